"""AWS MSK IAM for the Kafka clients (`CONVOAI_KAFKA_SASL_MECHANISM=AWS_MSK_IAM`), with the
optional `msk` extra (`pip install 'convoai-worker[msk]'`).

MSK's IAM listeners take SASL OAUTHBEARER whose token is a SigV4-signed request to the
cluster's region. AWS's signer library signs one with the standard credential chain (in a pod:
IRSA or EKS Pod Identity; else the environment, a profile, the instance role). A token is valid
for 15 minutes; `RenewedToken` signs the next one a minute before, in a thread, since finding
the credentials may call STS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from worker.kafka.oauth import RenewedToken, TokenUnavailableError
from worker.settings import Settings, SettingsError, variable_name

# region -> (token, expiry in Unix milliseconds), as aws_msk_iam_sasl_signer signs
Signer = Callable[[str], tuple[str, int]]


class MskIamToken(RenewedToken):
    """Tokens signed for the cluster's region with the process's AWS credentials."""

    def __init__(self, region: str, sign: Signer, *, clock: Callable[[], float] = time.time):
        super().__init__(clock=clock)
        self._region = region
        self._sign = sign

    async def _fetch(self) -> tuple[str, float | None]:
        try:
            token, expiry_ms = await asyncio.to_thread(self._sign, self._region)
        except Exception as error:  # noqa: BLE001 - botocore's errors share no base class
            raise TokenUnavailableError(
                f"AWS_MSK_IAM in {self._region}: cannot sign a token: "
                f"{type(error).__name__}: {error}"
            ) from None
        return token, expiry_ms / 1000


def msk_token(settings: Settings) -> MskIamToken:
    """The provider for `settings`, or a `SettingsError` naming what is missing."""
    mechanism = f"{variable_name('kafka_sasl_mechanism')}=AWS_MSK_IAM"
    if settings.kafka_security_protocol != "SASL_SSL":
        raise SettingsError(
            f"{mechanism} needs {variable_name('kafka_security_protocol')}=SASL_SSL "
            "(MSK serves IAM on its TLS listeners only)"
        )
    if not settings.kafka_aws_region:
        raise SettingsError(
            f"{mechanism} needs {variable_name('kafka_aws_region')} (the MSK cluster's region)"
        )
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415 - optional
    except ImportError:
        raise SettingsError(
            f"{mechanism} needs the msk extra: pip install 'convoai-worker[msk]'"
        ) from None
    return MskIamToken(settings.kafka_aws_region, MSKAuthTokenProvider.generate_auth_token)
