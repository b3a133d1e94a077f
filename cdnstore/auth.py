"""Passwords (argon2id, hashed and verified in a thread) and tokens (itsdangerous, signed).

Access tokens are signed and short-lived, and each names the session (login) it belongs to: a request
is served only while that session lives (users.py keeps which sessions ended). Refresh tokens are
signed too, but each is also kept server-side by hash (see users.py), so that refresh rotates them and
logout revokes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import IntEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from .clock import SYSTEM_CLOCK, Clock
from .config import AuthConfig
from .errors import TooManyAttempts, Unauthorized
from .records import fast_init


class Priority(IntEnum):
    """Whose password check it is: a turn goes to the lowest first, and each has a waiting room of its own,
    so a flood of anonymous checks from many addresses cannot shut out the people who logged in lately."""

    KNOWN_ADDRESS = 0  # a login succeeded from the client's address (IPv6: its /64) lately, on this daemon
    KNOWN_ACCOUNT = 1  # a login of this account succeeded lately (from anywhere, any daemon)
    OTHER = 2  # anyone else: a new address for an account not used lately, link passwords, hashes


class Passwords:
    """argon2id; each hash or verify costs ~0.1 s of CPU, so it always runs off the event loop.

    At most `argon2_max_running` run at once; the others wait for a turn, and get one by `Priority` (first
    come first served within one). Each priority has a waiting room: `argon2_max_waiting` for OTHER,
    `argon2_reserved_waiting` for each known one. A check (or hash: a link or user created, a password
    set) that finds its room full answers 429 at once instead of filling the default thread pool, which
    also serves the page's files and the database."""

    def __init__(self, cfg: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=cfg.argon2_time_cost, memory_cost=cfg.argon2_memory_kib, parallelism=cfg.argon2_parallelism
        )
        # Verified against when the username is unknown, so that both cases cost the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._max_running = cfg.argon2_max_running
        self._running = 0  # checks holding a turn now
        self._waiting: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in Priority}
        self._room = {
            Priority.KNOWN_ADDRESS: cfg.argon2_reserved_waiting,
            Priority.KNOWN_ACCOUNT: cfg.argon2_reserved_waiting,
            Priority.OTHER: cfg.argon2_max_waiting,
        }

    async def hash(self, password: str) -> str:
        async with self._turn(Priority.OTHER):
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str, priority: Priority = Priority.OTHER) -> bool:
        async with self._turn(priority):
            right = await asyncio.to_thread(self._verify, stored_hash or self._dummy, password)
        return right and bool(stored_hash)

    def waiting(self, priority: Priority) -> int:
        """How many checks of `priority` wait for a turn now."""
        return sum(not f.done() for f in self._waiting[priority])

    @contextlib.asynccontextmanager
    async def _turn(self, priority: Priority) -> AsyncIterator[None]:
        if self._running < self._max_running and not any(map(self.waiting, Priority)):
            self._running += 1
        else:
            queue = self._waiting[priority]
            if self.waiting(priority) >= self._room[priority]:
                raise TooManyAttempts("too many password checks are waiting; try again in a moment", retry_after=1)
            turn = asyncio.get_running_loop().create_future()
            queue.append(turn)
            try:
                await turn  # (the turn is counted in _running by whoever gives it: _next)
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._next()  # given a turn as it was cancelled: hand it on
                else:
                    turn.cancel()  # (left in the queue: skipped when its turn comes)
                raise
        try:
            yield
        finally:
            self._next()

    def _next(self) -> None:
        """A turn ends: it goes to the first waiting check of the lowest priority, else it is free."""
        for priority in Priority:
            queue = self._waiting[priority]
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._running -= 1

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class RecentSuccesses:
    """Keys (client addresses) that had a successful login within `ttl` seconds, in memory; bounded (the
    oldest are forgotten past `max_keys`). A failure from a key forgets it: an address that guesses is
    known no more, whatever it did before."""

    def __init__(self, ttl: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> when, oldest first

    def succeeded(self, key: str) -> None:
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    def failed(self, key: str) -> None:
        self._seen.pop(key, None)

    def __contains__(self, key: str) -> bool:
        when = self._seen.get(key)
        return when is not None and self._clock() - when < self.ttl


@fast_init
@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_uuid: str
    session: str


@fast_init
@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_uuid: str
    family: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _signer_on(clock: Clock) -> type[TimestampSigner]:
    """itsdangerous' timestamp signer reading `clock`: tokens are stamped, and their age judged, by it."""

    class OnTheClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.time())

    return OnTheClock


class Tokens:
    def __init__(self, cfg: AuthConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.access_ttl = cfg.access_token_ttl
        self.refresh_ttl = cfg.refresh_token_ttl
        self.clock = clock  # (a token's stamp and age: the sessions' clock)
        signer = _signer_on(clock)
        self._access = URLSafeTimedSerializer(cfg.secret_key, salt="cdnstore.access", signer=signer)
        self._refresh = URLSafeTimedSerializer(cfg.secret_key, salt="cdnstore.refresh", signer=signer)
        # Access tokens already verified: token -> (claims, unix time it expires). A client sends the
        # same token with every call until it expires; its HMAC is checked once, not every time.
        self._verified: dict[str, tuple[AccessClaims, float]] = {}

    def access(self, user_uuid: str, session: str) -> str:
        return self._access.dumps([user_uuid, session])

    def read_access(self, token: str) -> AccessClaims:
        hit = self._verified.get(token)
        if hit is not None and hit[1] > self.clock.time():
            return hit[0]
        try:
            value, signed = self._access.loads(token, max_age=self.access_ttl, return_timestamp=True)
        except SignatureExpired:
            raise Unauthorized("the access token has expired; refresh it") from None
        except BadData:
            raise Unauthorized("the access token is not valid") from None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise Unauthorized("the access token is not valid")  # e.g. one from before sessions
        claims = AccessClaims(value[0], value[1])
        if len(self._verified) >= 100_000:
            self._verified.clear()
        self._verified[token] = (claims, signed.timestamp() + self.access_ttl)
        return claims

    def refresh(self, user_uuid: str, family: str | None = None) -> tuple[str, RefreshClaims]:
        claims = RefreshClaims(user_uuid, family or secrets.token_urlsafe(12))
        # The random nonce makes every token distinct even within one second.
        token = self._refresh.dumps([claims.user_uuid, claims.family, secrets.token_urlsafe(16)])
        return token, claims

    def read_refresh(self, token: str) -> RefreshClaims:
        if not token.isascii():  # (a cookie's bytes that are no UTF-8: no token, and itsdangerous cannot read them)
            raise Unauthorized("the refresh token is not valid or has expired")
        try:
            value = self._refresh.loads(token, max_age=self.refresh_ttl)
        except BadData:
            raise Unauthorized("the refresh token is not valid or has expired") from None
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
            raise Unauthorized("the refresh token is not valid")
        return RefreshClaims(value[0], value[1])
