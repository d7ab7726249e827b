# syntax=docker/dockerfile:1.7
#
# IngestionAgent container image: one container per host (docs/deployment.md).
#
#   docker build -t ingestion-agent:0.1.0 .
#   docker run --rm --shm-size=256m \
#       -e INGEST_NATS__URL=nats://nats:4222 \
#       -e INGEST_POSTGRES__DSN=postgresql://ingest@postgres:5432/market \
#       -e INGEST_REDIS__URL=redis://redis:6379/0 \
#       -e INGEST_WORKERS__COUNT=2 \
#       -p 9108:9108 ingestion-agent:0.1.0
#
# The defaults in config.toml point at 127.0.0.1, which inside a container is the container
# itself: set the INGEST_* URLs (or mount a config at /app/config.toml). Workers hand quotes to
# the publisher through shared memory in /dev/shm (about 13 MB per worker ring with the default
# ring_capacity); Docker's default 64 MB /dev/shm is too small beyond ~4 workers, hence
# --shm-size. workers.count = 0 means one worker per CPU of the *host* (a --cpus quota does not
# change the CPU affinity): set INGEST_WORKERS__COUNT to the container's CPU limit.
# tini is PID 1 and forwards SIGTERM/SIGINT/SIGHUP to the supervisor only (not to its process
# group): the supervisor drains its workers and the publisher on SIGTERM (give it more than
# scheduler.shutdown_grace_s: docker stop -t 30) and reloads the symbols file on SIGHUP
# (docker kill -s HUP <container>).
#
# Image size (estimate, no Docker on the build machines): python:3.11-slim-bookworm ~125 MB
# uncompressed + the runtime venv measured at ~123 MB after the trimming below + tini ~1 MB,
# i.e. ~250 MB; see docs/deployment.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: the project's wheel and its runtime dependencies' wheels, pinned by constraints.txt
# (only what pyproject.toml's [project] dependencies need: the dev tools stay out), installed
# into a pip-less venv that is then trimmed (test suites, type stubs, Cython sources, debug
# symbols of the extension modules).
FROM ${PYTHON_IMAGE} AS build

ARG BINUTILS_VERSION=2.40-2

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# binutils for `strip` (this stage only)
RUN apt-get update \
    && apt-get install -y --no-install-recommends "binutils=${BINUTILS_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY engine ./engine
COPY schemas ./schemas
COPY yahoo_emulator ./yahoo_emulator

# Binary wheels only (every pin has a manylinux wheel; no compiler in the image), plus the
# project's own wheel, which carries schemas/ as the package engine.schemas.
RUN pip wheel --wheel-dir /wheels --only-binary=:all: --constraint constraints.txt .

RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-index --find-links=/wheels --no-compile \
        --constraint constraints.txt ingestion-agent \
    && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && find /opt/venv -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' \) -delete \
    && find /opt/venv -type f -name '*.so' -not -path '*.libs/*' -exec strip --strip-debug {} + \
    && /opt/venv/bin/ingestion-agent --version \
    && /opt/venv/bin/python -c "from engine.sinks.migrations import SCHEMA_DIR, load_migrations; \
assert load_migrations() and (SCHEMA_DIR / 'earnings').is_dir(), SCHEMA_DIR" \
    && /opt/venv/bin/python -c "import curl_cffi.requests, numpy, asyncpg, uvloop, redis, nats; \
import exchange_calendars, engine.supervisor, yahoo_emulator.cli; \
exchange_calendars.get_calendar('XNYS')"

# ---------------------------------------------------------------------------------------------
# runtime: the interpreter, tini and the venv; nothing else from the build stage.
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG TINI_VERSION=0.19.0-1+b3

LABEL org.opencontainers.image.title="ingestion-agent" \
      org.opencontainers.image.description="Yahoo Finance quotes -> NATS JetStream, PostgreSQL/TimescaleDB and Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary" \
      org.opencontainers.image.documentation="docs/deployment.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=${TINI_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin ingest

COPY --from=build /opt/venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY config.toml symbols.json ./
# var/: the NATS outbox and the PostgreSQL spill files (mount a volume here to keep them).
RUN mkdir -p /app/var && chown ingest:ingest /app/var

USER 10001:10001

# Serve metrics/health on the container's interface (the config default is loopback only).
ENV INGEST_HTTP__HOST=0.0.0.0 \
    INGEST_LOG__FORMAT=json
EXPOSE 9108

# Liveness: /healthz answers 200 while the supervisor serves HTTP (port: $INGEST_HTTP__PORT).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INGEST_HTTP__PORT', '9108'), timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "ingestion-agent"]
CMD ["run"]
