# syntax=docker/dockerfile:1
# One image for the four MRM services and the `mrm` CLI; docker-compose.yml and the Helm chart
# pick the process with `command: ["python", "-m", "services.<svc>"]`.
#
# Supply chain (README "Production", "Lockfile"): the base image is pinned by digest; every
# Python package comes from requirements.lock (exported from uv.lock: the production set only,
# no `embedded` or `dev` extra) and requirements-build.lock (the build backend), each file by
# version and SHA-256 (`--require-hashes`). Refresh both pins as README "Lockfile" says.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MRM_DATA_DIR=/var/lib/mrm \
    MRM_HOST=0.0.0.0

# A fixed, unprivileged uid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 mrm \
    && useradd --system --uid 10001 --gid mrm --home-dir /home/mrm --create-home mrm \
    && install -d -o mrm -g mrm /var/lib/mrm

# Build from a scratch directory that is removed afterwards: the services run from the installed
# package, and the image carries one copy of the code. The locked dependencies come first, in a
# layer of their own that a code change does not rebuild.
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock -r requirements-build.lock
COPY pyproject.toml README.md LICENSE ./
COPY shared ./shared
COPY services ./services
COPY mrm ./mrm
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && pip check \
    && rm -rf /src

WORKDIR /var/lib/mrm
USER mrm

EXPOSE 8001 8002 8003 8004

CMD ["mrm", "--help"]
