# syntax=docker/dockerfile:1
#
# Two stages: `builder` resolves the locked dependencies with uv into /app/.venv, `runtime` copies
# only that venv onto a clean slim image, so neither uv nor the sources ship.
#
#   docker build -t convoai-worker:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp convoai-worker:0.1.0 config
#
# Pin the base by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# uv from the Python package index, pinned like everything else; it stays in this stage.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# Compile bytecode now: the runtime root filesystem is read-only and PYTHONDONTWRITEBYTECODE is set.
# Copy instead of hard-linking from the cache mount, which is gone after the build step. Use the
# image's interpreter so the venv's `python` link is valid in the runtime stage (same base image).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies only, from the lock file: this layer is rebuilt when uv.lock changes, not on every
# code change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project

# The project itself, installed as a wheel (--no-editable) so the venv does not point at /app.
# README.md is part of the package metadata.
COPY pyproject.toml uv.lock README.md ./
COPY contracts ./contracts
COPY worker ./worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable


FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001
# Fixed ids so Kubernetes securityContext (runAsUser/runAsGroup) and volume ownership can match.
RUN groupadd --system --gid "${GID}" convoai \
    && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin convoai

# Owned by root and not writable by the worker user: the code cannot be modified at run time.
COPY --from=builder /app/.venv /app/.venv

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONVOAI_LOG_FORMAT=json

# /tmp is the only path the worker may write to; mount a tmpfs/emptyDir there with a read-only root.
WORKDIR /tmp
USER ${UID}:${GID}

# Metrics, /livez, /readyz and /webhooks/agora (CONVOAI_HTTP_PORT).
EXPOSE 8080

# No HEALTHCHECK: Kubernetes ignores it and probes /livez and /readyz itself (see the Helm chart),
# and the same image also runs `convoai-worker emulator`, which a worker health check would mark
# unhealthy. compose.yaml declares its own health checks per service.
ENTRYPOINT ["convoai-worker"]
CMD ["run"]
