"""Amazon SNS subscriptions of the storage webhook: which SubscriptionConfirmation URL cdnstore fetches,
and the fetch.

AWS S3 sends events to an HTTP endpoint only through SNS, which first POSTs a SubscriptionConfirmation
whose SubscribeURL must be fetched (GET) to start the deliveries. The body is the sender's word, so the
URL is fetched only where a confirmation can come from: AWS's SNS hosts (https://sns.<region>.amazonaws.com,
.com.cn in China), the registered storage server's own host, or an origin in `events.sns_origins`; and
only as SNS's own action (`Action=ConfirmSubscription`), without user info, without following a redirect,
never to a link-local or metadata address. Anything else is refused (422) and not fetched: the webhook
cannot be used to make cdnstore call an address of someone's choosing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import aiohttp

from .endpoints import GuardedResolver
from .errors import Invalid, UpstreamFailed

log = logging.getLogger(__name__)

AWS_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, lowercased and with the default port; None for another."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def refusal(url: str, server_endpoint: str, origins: Sequence[str]) -> str | None:
    """Why `url` may not be fetched to confirm a subscription of the server at `server_endpoint`; None
    when it may."""
    found = origin(url)
    if found is None:
        return "must be an http(s) URL"
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return "must not carry user info"
    if parse_qs(parts.query).get("Action") != ["ConfirmSubscription"]:
        return "must be an SNS ConfirmSubscription action (Action=ConfirmSubscription)"
    scheme, host, port = found
    if scheme == "https" and port == 443 and AWS_SNS_HOST.match(host):
        return None
    own = origin(server_endpoint)
    if (own is not None and host == own[1]) or found in {origin(o) for o in origins}:
        return None
    return (
        f"{scheme}://{host}:{port} is neither an AWS SNS host (https://sns.<region>.amazonaws.com), "
        "the storage server's own host, nor in events.sns_origins"
    )


class SubscriptionConfirmer:
    """Confirms SNS subscriptions (a GET of their SubscribeURL) where `refusal` allows it."""

    def __init__(self, origins: Sequence[str], *, timeout: float) -> None:
        self.origins = tuple(origins)
        self.timeout = timeout

    async def confirm(self, url: str, server_endpoint: str, *, topic: str | None = None) -> None:
        """Fetch `url`: Invalid (422) when it may not be fetched, UpstreamFailed (502) when the fetch
        failed (SNS then sends the confirmation again)."""
        why = refusal(url, server_endpoint, self.origins)
        if why is not None:
            log.warning("SNS subscription of topic %s not confirmed: its SubscribeURL %s", topic, why)
            raise Invalid("SubscribeURL", why, code="subscribe_url_not_allowed")
        connector = aiohttp.TCPConnector(resolver=GuardedResolver())
        try:
            async with aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as http:
                async with http.get(url, allow_redirects=False) as resp:
                    status = resp.status
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamFailed(
                f"the SNS subscription's SubscribeURL could not be fetched: {exc!r}", code="subscription_not_confirmed"
            ) from None
        if not 200 <= status < 300:
            raise UpstreamFailed(
                f"the SNS subscription's SubscribeURL answered HTTP {status}", code="subscription_not_confirmed"
            )
        log.info("SNS subscription of topic %s confirmed", topic)
