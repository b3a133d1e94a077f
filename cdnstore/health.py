"""Periodic health checks: a bounded HEAD on every bucket of a server that is on.

Uploads and downloads skip servers that are down, and jobs for them wait; once a server answers
again it is up, and the worker is woken to catch up.
"""

from __future__ import annotations

import asyncio
import logging

from .job_queue import JobQueue
from .models import Health
from .servers import ServerRegistry
from .storage_port import StoragePort

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(self, servers: ServerRegistry, storage: StoragePort, jobs: JobQueue, timeout: float) -> None:
        self.servers = servers
        self.storage = storage
        self.jobs = jobs
        self.timeout = timeout

    async def check_all(self) -> dict[str, Health]:
        """Check every server that is on; record and return the changes (server uuid -> health)."""
        on = [s for s in self.servers.all() if s.is_on]
        results = await asyncio.gather(*(self.storage.head_bucket(s.s3, timeout=self.timeout) for s in on))
        changes = {
            s.id: Health.UP if ok else Health.DOWN
            for s, ok in zip(on, results, strict=True)
            if (Health.UP if ok else Health.DOWN) is not s.health
        }
        for server in on:
            if server.id in changes:
                log.warning("server %s is %s", server.name, changes[server.id].value)
        if changes or self.servers.health_unsaved:
            try:
                await self.servers.set_health(changes)  # DatabaseUnavailable: saved with a later check
            finally:
                if Health.UP in changes.values():
                    self.jobs.wake()
        return changes
