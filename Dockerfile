# govcloud control plane (`govcloud-api`). The control plane needs no libvirt (only host
# agents do), so the image installs the package without extras; every dependency ships a
# wheel, so no compiler or -dev packages are needed in either stage.
#
#   docker build -t govcloud:0.1.0 .
#   docker run -p 8774:8774 \
#     -e GOVCLOUD_DATABASE_URL=postgresql://user:pass@db:5432/govcloud \
#     -e GOVCLOUD_ADMIN_TOKEN=... govcloud:0.1.0
#
# The process is stateless (all state in PostgreSQL) and writes nothing to its filesystem,
# so it runs as a non-root user with a read-only root filesystem (mount a tmpfs on /tmp).
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: install the package into a self-contained virtualenv ---------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
COPY agents ./agents
COPY quotas ./quotas
RUN /opt/venv/bin/pip install .

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 govcloud \
    && useradd --system --uid 10001 --gid govcloud --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin govcloud
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8774
# /openapi.json answers without authentication and without touching the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8774/openapi.json', timeout=4)"]
CMD ["govcloud-api", "--host", "0.0.0.0", "--port", "8774"]
