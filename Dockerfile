# syntax=docker/dockerfile:1
#
# `builder` resolves the locked dependencies with uv into /app/.venv, `runtime` (the default
# target) copies only that venv onto a clean slim image, so neither uv nor the sources ship. The
# `emulator` target is the same plus the ConvoAI API emulator (convoai-emulator), for compose and
# test environments; the production image does not contain it.
#
#   docker build -t convoai-worker:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp convoai-worker:0.1.0 config
#   docker build --target emulator -t convoai-emulator:0.1.0 .
#
# Pin the base by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# Optional extras of the worker, e.g. AWS MSK IAM (it brings botocore, about 100 MB):
#   docker build --build-arg EXTRAS=msk -t convoai-worker-msk:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# uv from the Python package index, pinned like everything else; it stays in this stage.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# Compile bytecode now: the runtime root filesystem is read-only and PYTHONDONTWRITEBYTECODE is set.
# Copy instead of hard-linking from the cache mount, which is gone after the build step. Use the
# image's interpreter so the venv's `python` link is valid in the runtime stage (same base image).
ARG EXTRAS=""
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies only, from the lock file: this layer is rebuilt when uv.lock changes, not on every
# code change. The workspace members' pyproject files are part of the lock.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=contracts/pyproject.toml,target=contracts/pyproject.toml \
    --mount=type=bind,source=worker/emulator/pyproject.toml,target=worker/emulator/pyproject.toml \
    uv sync --locked --no-dev --extra otel --no-install-workspace ${EXTRAS:+--extra "$EXTRAS"}

# The project and convoai-contracts, installed as wheels (--no-editable) so the venv does not
# point at /app. README.md is part of the package metadata. The otel extra is in the image, so
# CONVOAI_TRACING=true works without another image; it stays off by default.
COPY pyproject.toml uv.lock README.md ./
COPY contracts ./contracts
COPY worker ./worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra otel --no-editable ${EXTRAS:+--extra "$EXTRAS"}


FROM builder AS emulator-builder
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra otel --group emulator --no-editable ${EXTRAS:+--extra "$EXTRAS"}


FROM ${PYTHON_IMAGE} AS base

ARG UID=10001
ARG GID=10001
# Fixed ids so Kubernetes securityContext (runAsUser/runAsGroup) and volume ownership can match.
RUN groupadd --system --gid "${GID}" convoai \
    && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin convoai

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONVOAI_LOG_FORMAT=json

# /tmp is the only path the process may write to; mount a tmpfs/emptyDir there with a read-only
# root.
WORKDIR /tmp
USER ${UID}:${GID}
ENTRYPOINT ["convoai-worker"]
# No HEALTHCHECK: Kubernetes ignores it and probes /livez and /readyz itself (see the Helm chart);
# compose.yaml declares its own health checks per service.


FROM base AS emulator
# Owned by root and not writable by the process user: the code cannot be modified at run time.
COPY --from=emulator-builder /app/.venv /app/.venv
EXPOSE 8081
CMD ["emulator", "--host", "0.0.0.0", "--port", "8081"]


FROM base AS runtime
COPY --from=builder /app/.venv /app/.venv
# Metrics, /livez, /readyz and /webhooks/agora (CONVOAI_HTTP_PORT).
EXPOSE 8080
CMD ["run"]
