# NextModel Proxy as a container: `docker build -t nmproxy .` (podman reads this file too).
# Runs as UID 10001 with /data as its only writable path; works with --read-only, --cap-drop=ALL and
# --security-opt no-new-privileges. See README.md "Run as a container".

# ---- runtime base: Debian's Python 3.11 and the CA bundle, nothing else ------------------------------
FROM debian:bookworm-slim AS base
ENV DEBIAN_FRONTEND=noninteractive
# Unpinned on purpose (DL3008): bookworm's mirror drops superseded versions, so pins break with each security fix.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# ---- build: a venv with the proxy and its wheels (pip, setuptools and the sources stay here) ----------
FROM base AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nextmodel_proxy ./nextmodel_proxy
RUN python3 -m venv /opt/nmproxy \
 && /opt/nmproxy/bin/pip install --no-cache-dir --disable-pip-version-check '.[fast]' \
 && /opt/nmproxy/bin/pip uninstall -y --disable-pip-version-check pip setuptools

# ---- runtime ------------------------------------------------------------------------------------------
FROM base
RUN groupadd --gid 10001 nmproxy \
 && useradd --uid 10001 --gid nmproxy --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin nmproxy \
 && mkdir -p /data /etc/nmproxy \
 && chown 10001:10001 /data \
 && chmod 0750 /data
COPY --from=build /opt/nmproxy /opt/nmproxy
COPY providers.yaml /etc/nmproxy/providers.yaml
ENV PATH=/opt/nmproxy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NMPROXY_CONFIG=/etc/nmproxy/providers.yaml \
    NMPROXY_DB=/data/nextmodel.db \
    SQLITE_TMPDIR=/data
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status != 200)"]
# Exec form: nmproxy is PID 1 and gets SIGTERM itself, so in-flight requests drain and receipts are kept.
ENTRYPOINT ["nmproxy"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8787"]
