"""Routes: the job queue, for administrators (inspect, retry what failed)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..job_queue import JobEntry
from ..pagination import page
from ..times import iso
from .endpoint import Router, json_response
from .schemas import JobList, JobOut, JobsQuery
from .servers import render_ref

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_job(request: web.Request, job: JobEntry) -> dict[str, Any]:
    return render_job_row(request.app, job)


def render_job_row(app: web.Application, job: JobEntry) -> dict[str, Any]:
    server = app[appkeys.SERVERS].by_internal_id(job.server_id)
    return {
        "id": job.uuid,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "file_id": job.file_uuid,
        "file_name": job.file_name,
        "server": None if server is None else render_ref(server),
        "run_after": iso(job.run_after),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


@endpoint(
    "GET",
    "/api/v1/jobs",
    summary="List jobs",
    tag="jobs",
    admin=True,
    query=JobsQuery,
    responses={200: JobList},
    errors=(401, 403, 422),
)
async def list_jobs(request: web.Request, query: JobsQuery) -> web.Response:
    """Open and failed copy and remove jobs, oldest first; `status` keeps one state. Done jobs are gone."""
    jobs = await request.app[appkeys.JOBS].page(query.status, query.limit, query.after())
    return json_response(page(jobs, query.limit, lambda j: j.id, lambda j: render_job(request, j)))


@endpoint(
    "POST",
    "/api/v1/jobs/{id}/retry",
    summary="Retry a failed job",
    tag="jobs",
    admin=True,
    responses={200: JobOut},
    errors=(401, 403, 404, 409),
)
async def retry_job(request: web.Request) -> web.Response:
    """A failed job goes back to the queue with its attempts reset; 409 `job_not_failed` otherwise."""
    job = await request.app[appkeys.JOBS].retry(request.match_info["id"])
    return json_response(render_job(request, job))
