# syntax=docker/dockerfile:1.7
#
# IngestionAgent container image.
#
#   docker build -t ingestion-agent:0.1.0 .
#   docker run --rm --shm-size=256m \
#       -e INGEST_NATS__URL=nats://nats:4222 \
#       -e INGEST_POSTGRES__DSN=postgresql://ingest@postgres:5432/market \
#       -e INGEST_REDIS__URL=redis://redis:6379/0 \
#       -p 9108:9108 ingestion-agent:0.1.0
#
# The defaults in config.toml point at 127.0.0.1, which inside a container is the container
# itself: set the INGEST_* URLs (or mount a config at /app/config.toml). Workers hand quotes to
# the publisher through shared memory in /dev/shm (about 13 MB per worker ring with the default
# ring_capacity); Docker's default 64 MB /dev/shm is too small beyond ~4 workers, hence
# --shm-size. tini is PID 1 and forwards SIGTERM/SIGINT/SIGHUP to the supervisor, which drains
# and shuts its children down (give it scheduler.shutdown_grace_s: docker stop -t 30).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: every pinned dependency as a wheel (cached while constraints.txt is unchanged), then
# the project's own wheel.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY constraints.txt ./
RUN pip wheel --wheel-dir /wheels --requirement constraints.txt

COPY pyproject.toml README.md ./
COPY engine ./engine
COPY yahoo_emulator ./yahoo_emulator
RUN pip wheel --wheel-dir /wheels --no-deps --constraint constraints.txt .

# ---------------------------------------------------------------------------------------------
# runtime: the interpreter, tini, a pip-less venv with the engine and its runtime dependencies.
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG TINI_VERSION=0.19.0-1+b3

LABEL org.opencontainers.image.title="ingestion-agent" \
      org.opencontainers.image.description="Yahoo Finance quotes -> NATS JetStream, PostgreSQL/TimescaleDB and Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=${TINI_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin ingest

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Only the wheels the engine needs are installed (the dev tools' wheels stay in the build stage);
# the venv has no pip: the base image's pip installs into it.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-index --find-links=/wheels \
        "ingestion-agent==${VERSION}" \
    && ingestion-agent --version \
    && python -c "from engine.migrations import load_migrations; assert load_migrations(), 'schema files missing from the installed package'"

WORKDIR /app
COPY config.toml symbols.json ./
RUN mkdir -p /app/var && chown ingest:ingest /app/var

USER 10001:10001

# Serve metrics/health on the container's interface (the config default is loopback only).
ENV INGEST_HTTP__HOST=0.0.0.0 \
    INGEST_LOG__FORMAT=json
EXPOSE 9108

# Placeholder until the HTTP endpoint lands: /healthz answers 200 while the engine is healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "ingestion-agent"]
CMD ["run"]
