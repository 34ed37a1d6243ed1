"""A second local broker with TLS and SASL listeners, for the security tests.

Certificates are made for the test by trustme (a CA, the broker's certificate for 127.0.0.1 and
a client certificate); SCRAM credentials are written when the storage is formatted. Listeners:
PLAINTEXT (inter-broker), SASL_SSL with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER,
and SSL that requires a client certificate (mutual TLS). OAUTHBEARER takes unsecured JWS tokens
(`tests.tokens`), checked by Kafka's unsecured validator as a real one checks signed tokens:
a `sub` claim and an `exp` in the future; a connection is closed by the broker at its next
request once the token it authenticated with has expired. It runs through `scripts/kafka` like
the main broker, with its own ports and directory, and is stopped (by its pid file) at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

from devtools.local import free_port
from tests.kafka import running_broker

USERNAME = "alice"
PASSWORD = "alice-secret-7c1f"


@dataclass(frozen=True)
class SecureBroker:
    """Addresses and client files of the secured broker."""

    plaintext: str
    sasl_ssl: str
    mutual_tls: str
    ca_file: Path
    client_cert: Path
    client_key: Path


def _pkcs8(pem: bytes) -> bytes:
    """Kafka reads PEM private keys in PKCS#8 only."""
    key = serialization.load_pem_private_key(pem, None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    """(CA, broker key + chain, client chain, client key) as PEM files."""
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    server = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    client = ca.issue_cert("convoai-worker", key_type=trustme.KeyType.RSA)
    paths = [directory / name for name in ("ca.pem", "broker.pem", "client.pem", "client-key.pem")]
    paths[0].write_bytes(ca.cert_pem.bytes())
    chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
    paths[1].write_bytes(_pkcs8(server.private_key_pem.bytes()) + chain)
    paths[2].write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    paths[3].write_bytes(_pkcs8(client.private_key_pem.bytes()))
    return paths[0], paths[1], paths[2], paths[3]


@contextlib.contextmanager
def running_secure_broker(directory: Path) -> Iterator[SecureBroker]:
    """Start the secured broker in `directory`; stop it when the block ends."""
    ca, keystore, client_cert, client_key = _certificates(directory)
    ports = {"broker": free_port(), "controller": free_port()}
    plain, controller = ports["broker"], ports["controller"]
    sasl, mtls = free_port(), free_port()
    login = "org.apache.kafka.common.security"
    extra = directory / "secure.properties"
    # later keys win: the listeners below replace the plain ones of scripts/kafka
    extra.write_text(
        f"""listeners=PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},\\
SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls}
advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl},\\
SSL://127.0.0.1:{mtls}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_ssl.plain.sasl.jaas.config={login}.plain.PlainLoginModule required \\
  user_{USERNAME}="{PASSWORD}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={login}.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={login}.scram.ScramLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config={login}.oauthbearer.OAuthBearerLoginModule \\
  required unsecuredLoginStringClaim_sub="broker";
listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=\\
{login}.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
listener.name.ssl.ssl.client.auth=required
"""
    )
    scram = f"[name={USERNAME},password={PASSWORD}]"
    with running_broker(
        directory / "broker",
        ports,
        KAFKA_EXTRA_CONFIG=str(extra),
        KAFKA_FORMAT_ARGS=f"--add-scram SCRAM-SHA-256={scram} --add-scram SCRAM-SHA-512={scram}",
        KAFKA_HEAP_OPTS="-Xms128m -Xmx384m",
    ):
        yield SecureBroker(
            plaintext=f"127.0.0.1:{plain}",
            sasl_ssl=f"127.0.0.1:{sasl}",
            mutual_tls=f"127.0.0.1:{mtls}",
            ca_file=ca,
            client_cert=client_cert,
            client_key=client_key,
        )
