"""The webhook worker: claims due deliveries (webhook_queue.py), sends each as the Standard Webhooks
specification says (https://www.standardwebhooks.com), `webhooks.workers` at once, and records the outcome.

A delivery is a POST of its JSON body `{"type", "timestamp", "data"}` with `webhook-id` (the delivery's id,
the same on every attempt: receivers drop what they already took), `webhook-timestamp` (this attempt's unix
seconds: receivers refuse old ones, so a captured request cannot be replayed later) and `webhook-signature`
(`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the base64-decoded part of the
webhook's `whsec_` secret). A 2xx answer delivers it; anything else (a 3xx too: redirects are never
followed), a timeout or no connection is a failed attempt, tried again later.

What the worker connects to is the webhook policy's (endpoints.py): names through the guarded resolver
(`webhooks.allow_private` decides on loopback and private addresses; link-local and metadata ones never),
IP literals checked here, as aiohttp connects to those without a resolver. No proxy from the environment,
no cookies kept, `webhooks.timeout` seconds for everything from the claim on; of an error answer only the
status and its first bytes are read (for `last_error`), never the whole body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from yarl import URL

from .config import WebhooksConfig
from .endpoints import EndpointNotAllowed, GuardedResolver, literal_address, refused
from .errors import DatabaseUnavailable
from .metrics import Metrics
from .sealing import Sealer
from .webhook_queue import Delivery, WebhookQueue

log = logging.getLogger(__name__)

USER_AGENT = "cdnstore-webhooks/1"
ERROR_BYTES = 1024  # of an error answer's body, read for last_error; the rest is never read
ERROR_CHARS = 200


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value for one attempt (Standard Webhooks, symmetric `v1`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def payload(d: Delivery) -> bytes:
    """The body: the event's type, when it happened, and its data (a user's event names its file)."""
    data = json.loads(d.data)
    if d.object_id is not None:
        data["file_id"] = d.object_id
    return orjson.dumps({"type": d.event, "timestamp": d.occurred_at, "data": data})


class WebhookWorker:
    def __init__(self, queue: WebhookQueue, sealer: Sealer, cfg: WebhooksConfig, metrics: Metrics) -> None:
        self.queue = queue
        self.sealer = sealer
        self.cfg = cfg
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None
        self._sending = 0  # deliveries being sent now

    async def run(self) -> None:
        """Send due deliveries until cancelled."""
        while self.queue.db.one_daemon:  # several daemons: their leases run out instead
            try:
                await self.queue.release_all()
                break
            except DatabaseUnavailable:
                await asyncio.sleep(self.cfg.poll_interval)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(private_allowed=self.cfg.allow_private))
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # one receiver's cookies never go to another
            auto_decompress=False,  # an error body's first bytes as sent: no decompression bomb
            headers={"User-Agent": USER_AGENT},
        ) as http:
            self._http = http
            async with asyncio.TaskGroup() as group:
                for n in range(self.cfg.workers):
                    group.create_task(self._loop(), name=f"webhook-worker-{n}")

    async def _loop(self) -> None:
        while True:
            try:
                delivery = await self.queue.claim()
            except DatabaseUnavailable:
                delivery = None  # (the database logged it): look again after a while
            except Exception:
                log.exception("claiming a webhook delivery failed; trying again")
                delivery = None
            if delivery is None:
                with contextlib.suppress(TimeoutError):  # (not wait_for: see JobWorker._loop)
                    async with asyncio.timeout(self.cfg.poll_interval):
                        await self.queue.wakeup.wait()
                self.queue.wakeup.clear()
                continue
            self._sending += 1
            try:
                await self._deliver(delivery)
            except Exception:  # its outcome not written: its lease runs out, and it is sent again
                log.exception("webhook delivery %s: recording its outcome failed", delivery.uuid)
            finally:
                self._sending -= 1

    async def _deliver(self, d: Delivery) -> None:
        """One attempt and its outcome. Interrupted (shutdown): back to the queue, the attempt not spent."""
        outcome: Callable[[], Awaitable[bool]]
        # (tests/test_webhook_faults.py reads these lines to tell which daemon was sending what)
        log.info("webhook delivery %s (%s) attempt %d starts, claim %s", d.uuid, d.event, d.attempts, d.token)
        try:
            error = await self.attempt(d) if d.owner_active else "not sent: the webhook's owner is disabled"
        except asyncio.CancelledError:
            with contextlib.suppress(DatabaseUnavailable):
                await asyncio.shield(self.queue.release(d))
            raise
        except Exception as exc:  # (a secret sealed with another auth.secret_key, a bug): an attempt that failed
            log.exception("webhook delivery %s (%s) could not be sent", d.uuid, d.event)
            error = f"not sent: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if error is None:
            self.metrics.webhook_deliveries.labels("delivered").inc()
            outcome = functools.partial(self.queue.delivered, d)
        else:
            log.info("webhook delivery %s (%s) attempt %d: %s", d.uuid, d.event, d.attempts, error)
            self.metrics.webhook_deliveries.labels("failed").inc()
            outcome = functools.partial(self.queue.failed, d, error, final=not d.owner_active)
        if not await self._record(outcome):
            log.info("webhook delivery %s: its webhook was deleted, or its claim taken over meanwhile", d.uuid)

    async def _record(self, outcome: Callable[[], Awaitable[bool]]) -> bool:
        """Write an outcome; while the database refuses writes, try again every poll interval (its lease runs
        out meanwhile, and it is sent again: at least once)."""
        while True:
            try:
                return await outcome()
            except DatabaseUnavailable:
                await asyncio.sleep(self.cfg.poll_interval)

    async def attempt(self, d: Delivery) -> str | None:
        """POST the delivery once: None when the receiver took it (2xx), else what went wrong."""
        assert self._http is not None, "run() makes the session"
        host = URL(d.url).host or ""
        literal = literal_address(host)
        if literal is not None and refused(literal, private_allowed=self.cfg.allow_private):
            return f"refused: {host} is an address webhooks may not reach"
        body = payload(d)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": d.uuid,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(self.sealer.unseal(d.secret), d.uuid, stamp, body),
        }
        # From the claim on: the attempt is over well before the claim's lease (twice this) runs out.
        left = max(0.0, d.claimed_at + self.cfg.timeout - time.monotonic())
        try:
            async with asyncio.timeout(left):
                async with self._http.post(d.url, data=body, headers=headers, allow_redirects=False) as resp:
                    if 200 <= resp.status < 300:
                        return None
                    return answered(resp.status, await resp.content.read(ERROR_BYTES))
        except TimeoutError:
            return f"no answer within {self.cfg.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EndpointNotAllowed):
                return f"refused: {exc.os_error}"
            return f"cannot connect to {host}: {exc.os_error.strerror or exc.os_error}"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]

    async def idle(self, within: float = 30.0) -> None:
        """Wait until nothing is being sent and nothing is due (for tests and tools)."""
        async with asyncio.timeout(within):
            while True:
                self.queue.wake()
                await asyncio.sleep(0.02)
                if not self._sending and not await self.queue.due():
                    return


def answered(status: int, head: bytes) -> str:
    """An answer that is not 2xx, in last_error's words: its status and the first characters of its body."""
    if 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    text = re.sub(r"\s+", " ", head.decode("utf-8", "replace")).strip()
    text = "".join(c for c in text if c.isprintable())[:ERROR_CHARS]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"
