"""Routes: the job queue, for administrators (inspect, retry what failed)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import appkeys
from ..db import Row
from ..job_queue import job_uuid
from ..pagination import page
from ..times import iso
from .endpoint import Router, json_response
from .schemas import JobList, JobOut, JobsQuery
from .servers import render_ref

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints


def render_job(request: web.Request, row: Row) -> dict[str, Any]:
    return render_job_row(request.app, row)


def render_job_row(app: web.Application, row: Row) -> dict[str, Any]:
    server = app[appkeys.SERVERS].by_internal_id(row["server_id"])
    return {
        "id": job_uuid(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "file_id": row["file_uuid"],
        "file_name": row["file_name"],
        "server": None if server is None else render_ref(server),
        "run_after": iso(row["run_after"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
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
    rows = await request.app[appkeys.JOBS].page(query.status, query.limit, query.after())
    return json_response(page(rows, query.limit, lambda r: r["id"], lambda r: render_job(request, r)))


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
    row = await request.app[appkeys.JOBS].retry(request.match_info["id"])
    return json_response(render_job(request, row))
