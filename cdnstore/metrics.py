"""Prometheus metrics of one process, in a registry of its own (never prometheus_client's global one,
so two apps in one process, as in the tests, count apart).

Counters and histograms are updated where things happen (requests in the observing middleware,
uploads in Files.announce, downloads in the download route, bytes in the replicator's copy); gauges
(jobs by kind and state, server health, the database's state) are set at scrape time from a cheap
query and the in-memory server registry. Hot paths call small methods that cache the labelled
children, so a request costs a dict lookup and two additions, not a label resolution.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds: presigning answers in well under a millisecond; logins take ~0.1 s (argon2).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Histogram(
            "cdnstore_http_request_duration_seconds",
            "HTTP requests by route (its declared path) and status: latency; _count is the number of requests",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.uploads_total = Counter(
            "cdnstore_uploads", "Uploads announced (presigned PUTs handed out), by server", ("server",), registry=r
        )
        self.downloads_total = Counter(
            "cdnstore_downloads", "Downloads handed out (presigned GETs), by server", ("server",), registry=r
        )
        self.replicated_bytes = Counter(
            "cdnstore_replicated_bytes", "Bytes copied between servers, by destination server", ("server",), registry=r
        )
        self.wrong_bytes = Counter(
            "cdnstore_copy_wrong_bytes",
            "Copies (and verification reads) whose source gave bytes that differ "
            "from the version's SHA-256 (or its upload's MD5): nothing was recorded; by source server",
            ("server",),
            registry=r,
        )
        self.versions_rejected = Counter(
            "cdnstore_versions_rejected",
            "Uploads rejected before they became content: their bytes did not match their declared SHA-256, or "
            "could not be verified",
            registry=r,
        )
        self.verify_retries = Counter(
            "cdnstore_verification_retries",
            "Verification reads that settled nothing (two reads that disagree, a read that failed): the version "
            "is read again after a back-off; by server",
            ("server",),
            registry=r,
        )
        self.verify_given_up = Counter(
            "cdnstore_verifications_given_up",
            "Versions whose verification reads never settled (integrity.verify_attempts of them): rejected when "
            "not yet content, else the replica read marked corrupt",
            registry=r,
        )
        self.replicas_altered = Counter(
            "cdnstore_replicas_altered_found",
            "Replicas a storage event's re-check found written again after they were stored (marked corrupt, "
            "repaired from a good holder); by server",
            ("server",),
            registry=r,
        )
        self.verified_bytes = Counter(
            "cdnstore_verified_bytes",
            "Bytes read back by verification reads (a version's first read when no copy makes it), by server",
            ("server",),
            registry=r,
        )
        self.jobs = Gauge("cdnstore_jobs", "Jobs in the queue by kind and state", ("kind", "state"), registry=r)
        self.server_up = Gauge(
            "cdnstore_server_up",
            "1 when the server's last health check passed, else 0 (down, unknown)",
            ("server",),
            registry=r,
        )
        self.server_on = Gauge("cdnstore_server_on", "1 when the server is on", ("server",), registry=r)
        self.database_writable = Gauge(
            "cdnstore_database_writable",
            "0 while the database's disk refuses writes (full, failing), else 1",
            registry=r,
        )
        self.history_pending = Gauge(
            "cdnstore_history_pending", "Download history rows waiting in memory to be written", registry=r
        )
        self.scrub_verified = Counter(
            "cdnstore_scrub_verified_replicas", "Replicas the deep scrub read back whose SHA-256 matched", registry=r
        )
        self.scrub_corrupt = Counter(
            "cdnstore_scrub_corrupt_replicas_found",
            "Replicas the deep scrub found differing from their SHA-256 (marked corrupt, repair enqueued)",
            ("server",),
            registry=r,
        )
        self.scrub_read_bytes = Counter(
            "cdnstore_scrub_read_bytes", "Bytes the deep scrub read back from the servers", registry=r
        )
        self.replicas_corrupt = Gauge(
            "cdnstore_replicas_corrupt",
            "Replicas now marked corrupt (waiting for their repair), by server",
            ("server",),
            registry=r,
        )
        self.versions_without_good_holder = Gauge(
            "cdnstore_versions_without_good_holder",
            "Stored versions found corrupt on every server that "
            "holds them: no good copy left to serve or repair from (needs an operator)",
            registry=r,
        )
        self.storage_events = Counter(
            "cdnstore_storage_events",
            "Object events received from storage servers' webhooks, by server and kind (created, removed)",
            ("server", "kind"),
            registry=r,
        )
        self.event_bodies_without_objects = Counter(
            "cdnstore_storage_event_bodies_without_objects",
            "Webhook bodies that parsed but held no object event of the server's bucket "
            "(a webhook pointed at the wrong server or bucket, test events, other kinds), by server and shape",
            ("server", "shape"),
            registry=r,
        )
        self.archives_streaming = Gauge(
            "cdnstore_archives_streaming", "ZIP archives of share links being streamed now", registry=r
        )
        self.archives_total = Counter(
            "cdnstore_archives",
            "ZIP archives of share links asked for, by outcome: completed, failed (cut short: a client gone, "
            "no holder left) or refused (links.max_archives were streaming)",
            ("outcome",),
            registry=r,
        )
        self.archive_bytes = Counter(
            "cdnstore_archive_bytes", "Bytes of files sent in ZIP archives (read from the servers)", registry=r
        )
        self.webhook_deliveries = Counter(
            "cdnstore_webhook_delivery_attempts",
            "Webhook delivery attempts by outcome: delivered (a 2xx answer) or failed (tried again later, until "
            "webhooks.retry_for)",
            ("outcome",),
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], Histogram] = {}
        self._upload_children: dict[str, Counter] = {}
        self._download_children: dict[str, Counter] = {}

    # --- hot paths ------------------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(method, route, str(status))
        child.observe(seconds)

    def uploaded(self, server: str) -> None:
        child = self._upload_children.get(server)
        if child is None:
            child = self._upload_children[server] = self.uploads_total.labels(server)
        child.inc()

    def downloaded(self, server: str) -> None:
        child = self._download_children.get(server)
        if child is None:
            child = self._download_children[server] = self.downloads_total.labels(server)
        child.inc()

    def storage_event(self, server: str, created: bool) -> None:
        self.storage_events.labels(server, "created" if created else "removed").inc()

    def event_without_objects(self, server: str, shape: str) -> None:
        self.event_bodies_without_objects.labels(server, shape).inc()

    def replicated(self, server: str, size: int) -> None:
        self.replicated_bytes.labels(server).inc(size)

    def scrub_read(self, size: int) -> None:
        self.scrub_read_bytes.inc(size)

    def archive_refused(self) -> None:
        self.archives_total.labels("refused").inc()

    def archive_ended(self, outcome: str) -> None:
        self.archives_total.labels(outcome).inc()

    # --- scrape time ----------------------------------------------------------------------------

    def set_integrity(self, corrupt: Iterable[tuple[str, int]], without_good_holder: int) -> None:
        """Corrupt replicas by server name (servers with none are exported as 0), and the versions with
        no good copy left."""
        _clear(self.replicas_corrupt)
        for name, count in corrupt:
            self.replicas_corrupt.labels(name).set(count)
        self.versions_without_good_holder.set(without_good_holder)

    def set_jobs(self, kinds: Iterable[str], states: Iterable[str], counts: Iterable[tuple[str, str, int]]) -> None:
        """Every (kind, state) pair is exported, 0 when none is in that state."""
        states = tuple(states)
        for kind in kinds:
            for state in states:
                self.jobs.labels(kind, state).set(0)
        for kind, state, count in counts:
            self.jobs.labels(kind, state).set(count)

    def set_servers(self, servers: Iterable[tuple[str, bool, bool]]) -> None:
        """(name, is_on, is_up) of every server; servers renamed or deleted since the last scrape vanish."""
        _clear(self.server_up, self.server_on)
        for name, is_on, is_up in servers:
            self.server_on.labels(name).set(int(is_on))
            self.server_up.labels(name).set(int(is_up))

    def set_database(self, writable: bool, history_pending: int) -> None:
        self.database_writable.set(int(writable))
        self.history_pending.set(history_pending)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _clear(*metrics: MetricWrapperBase) -> None:
    for metric in metrics:
        metric.clear()
