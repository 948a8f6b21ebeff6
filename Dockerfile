# syntax=docker/dockerfile:1
# One image for the four MRM services and the `mrm` CLI; docker-compose.yml picks the process
# with `command: ["python", "-m", "services.<svc>"]`.
FROM python:3.11.11-slim-bookworm

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
# package, and the image carries one copy of the code.
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY mrm ./mrm
RUN pip install --no-cache-dir . \
    && rm -rf /src

WORKDIR /var/lib/mrm
USER mrm

EXPOSE 8001 8002 8003 8004

CMD ["mrm", "--help"]
