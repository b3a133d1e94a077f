# cdnstore in a container. Build: `docker build -t cdnstore .`
# Run:  docker run -p 8080:8080 -v cdnstore:/data \
#         -e CDNSTORE_AUTH_SECRET_KEY=... -e CDNSTORE_EVENTS_TOKEN=... \
#         -e CDNSTORE_HTTP_PUBLIC_URL=https://files.example.com cdnstore
# then: docker exec -it <container> cdnstore user add admin --admin
# Every setting is an environment variable CDNSTORE_<SECTION>_<KEY> (docs/operations.md lists them);
# a config file can be mounted and named with CDNSTORE_CONFIG instead. deploy/compose.yaml is an example.

# --- build: a virtual environment with cdnstore and its dependencies (the GeoLite2 City database
# comes in the maxminddb-geolite2 dependency) ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/cdnstore
WORKDIR /src
COPY pyproject.toml README.md schema.sql ./
COPY cdnstore ./cdnstore
RUN /opt/cdnstore/bin/pip install . \
 && /opt/cdnstore/bin/python -c "from cdnstore.geo import default_database_path as p; \
assert p().stat().st_size > 1_000_000, p(); print('GeoLite2 database:', p())"

# --- run: slim base, the venv only (no compiler, no pip cache), an unprivileged user ---
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home --shell /usr/sbin/nologin cdnstore
COPY --from=build /opt/cdnstore /opt/cdnstore
ENV PATH=/opt/cdnstore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CDNSTORE_HTTP_HOST=0.0.0.0 \
    CDNSTORE_HTTP_PORT=8080 \
    CDNSTORE_DATABASE_PATH=/data/cdnstore.sqlite3 \
    CDNSTORE_LOG_FORMAT=json
USER cdnstore
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# /healthz answers 200 while the process serves (readiness, with its checks, is /readyz).
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDNSTORE_HTTP_PORT', '8080'), timeout=2)"]
# docker stop sends SIGTERM and waits 10 s by default: give it more than jobs.shutdown_grace
# (`docker stop -t 40`, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
CMD ["cdnstore", "serve"]
