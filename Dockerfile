# cdnstore in a container: `docker build -t cdnstore .` then
# `docker run -p 8080:8080 -e CDNSTORE_AUTH_SECRET_KEY=... -e CDNSTORE_EVENTS_TOKEN=... -v cdnstore:/data cdnstore`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md schema.sql ./
COPY cdnstore ./cdnstore
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home cdnstore
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER cdnstore
WORKDIR /data
ENV CDNSTORE_HTTP_HOST=0.0.0.0 \
    CDNSTORE_HTTP_PORT=8080 \
    CDNSTORE_DATABASE_PATH=/data/cdnstore.sqlite3
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
CMD ["cdnstore", "serve"]
