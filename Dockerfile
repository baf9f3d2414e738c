# streamlimit: the HTTP service (`streamlimit serve`) in a small non-root image.
#
#   docker build -t streamlimit .
#   docker run --rm -p 3000:3000 -e STREAMLIMIT_AUTH=jwt -e STREAMLIMIT_JWT_SECRET=... \
#       -e STREAMLIMIT_STORE_URL=redis://redis:6379/0 streamlimit
#
# The image listens on 0.0.0.0:3000, so it refuses to start with the default STREAMLIMIT_AUTH=none:
# set STREAMLIMIT_AUTH (jwt, api_key). See deploy/README.md.

# both stages must use the same Python: the venv's interpreter is a link to the base image's
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a wheel of the project, installed with its pinned dependencies into /opt/venv
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# only what the wheel needs (pyproject names README.md as the long description)
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/streamlimit-*.whl \
    && /opt/venv/bin/streamlimit --help > /dev/null

# ---- final: the venv only; no compiler, no pip cache, no sources
FROM ${PYTHON_IMAGE}
# a fixed uid/gid (10001), so Kubernetes' runAsNonRoot can check it and volumes can be chowned to it
RUN groupadd --system --gid 10001 streamlimit \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin streamlimit \
    && mkdir -p /var/lib/streamlimit \
    && chown 10001:10001 /var/lib/streamlimit
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMLIMIT_HOST=0.0.0.0 \
    STREAMLIMIT_PORT=3000
# the default store (embedded://./.streamlimit) lives here when STREAMLIMIT_STORE_URL is not set:
# one container only; mount a volume on it to keep its data. Production: a Redis/Valkey URL.
WORKDIR /var/lib/streamlimit
USER 10001:10001
EXPOSE 3000
# liveness only (the process answers); /readyz also needs the store
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STREAMLIMIT_PORT', '3000') + '/healthz', timeout=2)"]
ENTRYPOINT ["streamlimit"]
CMD ["serve"]
