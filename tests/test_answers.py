"""Every answer has exactly the fields its *Out model (api/schemas.py, hence the OpenAPI document) declares.

The answers are dicts built by hand (the download answer is the hot path: no model on the way out); each
render function is checked here against its model on representative records, so the document cannot drift
from the answers unnoticed: a field added, dropped, renamed or retyped on one side fails here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from cdnstore import appkeys
from cdnstore.api.files import (
    download_answer,
    render_file,
    render_part_url,
    render_replicas,
    render_upload,
    render_upload_settings,
    render_upload_state,
    render_with_servers,
)
from cdnstore.api.jobs import render_job_row
from cdnstore.api.links import render_link, render_public
from cdnstore.api.schemas import (
    DeliveryOut,
    DownloadOut,
    FileOut,
    FileUploadOut,
    JobOut,
    LinkOut,
    Out,
    PartUrlOut,
    PublicLinkOut,
    ReplicaOut,
    ServerOut,
    ServerRef,
    UploadSettingsOut,
    UploadStateOut,
    UserOut,
    WebhookCreatedOut,
    WebhookOut,
)
from cdnstore.api.servers import render_ref, render_server
from cdnstore.api.users import render_row, render_user
from cdnstore.api.webhooks import render_created, render_delivery, render_webhook
from cdnstore.config import UploadsConfig
from cdnstore.files import Download, Multipart, PresignedPut, Upload
from cdnstore.models import PERMISSIONS, Health, Server, User
from cdnstore.storage import PartInfo
from cdnstore.uploads import PartUrl, UploadState
from cdnstore.webhooks import Webhook

UUID = "6f1c2a9e-0b7d-4c1e-9a55-3d2f8e4b7c10"
FILE_UUID = "0d4e5f60-7182-4394-a5b6-c7d8e9f00112"
WHEN = "2026-11-28T11:43:24.123456Z"
SHA = "ab" * 32
DALLAS = Server(
    id=UUID,
    name="dallas",
    endpoint_url="http://127.0.0.1:8333",
    bucket="cdn",
    region="us-east-1",
    access_key="key",
    secret_key="secret",
    location="Dallas, USA",
    zone="USA",
    latitude=32.78,
    longitude=-96.8,
    is_on=True,
    is_active=True,
    health=Health.UP,
    created_at=WHEN,
    updated_at=WHEN,
    events_token_hash=SHA,
)


def assert_exactly(model: type[Out], answer: dict[str, Any], *, optional: tuple[str, ...] = ()) -> None:
    """`answer` has every field the model requires, the `optional` ones it declares, nothing else, and
    each value of the model's type (strict: no coercion), the same after a round trip through the model."""
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(answer) == required | set(optional), model.__name__
    assert model.model_validate(answer, strict=True).model_dump(mode="json", exclude_unset=True) == answer


def file_row(**changed: Any) -> dict[str, Any]:
    return {
        "uuid": FILE_UUID,
        "name": "report.pdf",
        "size": 1234,
        "content_type": "application/pdf",
        "current_version_id": 7,
        "zone": "USA",
        "sha256": SHA,
        "created_at": WHEN,
        "updated_at": WHEN,
        **changed,
    }


def link_row(**changed: Any) -> dict[str, Any]:
    return {
        "uuid": UUID,
        "file_uuid": FILE_UUID,
        "token": "t" * 43,
        "password_hash": "$argon2id$...",
        "expires_at": WHEN,
        "max_downloads": 5,
        "downloads": 2,
        "created_at": WHEN,
        "name": "report.pdf",
        "size": 1234,
        **changed,
    }


def test_a_file_answer_is_exactly_a_file_out_stored_or_uploading() -> None:
    assert_exactly(FileOut, render_file(file_row()))
    assert_exactly(FileOut, render_file(file_row(current_version_id=None, sha256=None)))
    assert_exactly(FileOut, render_with_servers(file_row(), {7: [(DALLAS, "present")]}), optional=("servers",))
    assert_exactly(FileOut, render_with_servers(file_row(current_version_id=None), {}), optional=("servers",))


def test_an_announced_upload_is_exactly_a_file_upload_out_put_or_multipart() -> None:
    put = PresignedPut("http://127.0.0.1:8333/cdn/key?X-Amz-Signature=x", {"content-type": "text/plain"}, WHEN, DALLAS)
    for send in (put, Multipart(8 * 2**20, 13, WHEN, DALLAS)):
        answer = render_upload(Upload(True, file_row(current_version_id=None), send))
        assert_exactly(FileUploadOut, answer)
        assert answer["upload"]["method"] == ("PUT" if send is put else "multipart")  # (the union's two sides)


def test_an_upload_in_progress_is_exactly_an_upload_state_out_put_or_multipart() -> None:
    url = "http://127.0.0.1:8333/cdn/key?X-Amz-Signature=x"
    put = UploadState(DALLAS, 1234, 1, [], WHEN, PresignedPut(url, {"content-type": "text/plain"}, WHEN, DALLAS))
    assert_exactly(UploadStateOut, render_upload_state(put), optional=("url", "headers"))
    held = [PartInfo(1, 8 * 2**20, "a" * 32, None), PartInfo(2, 8 * 2**20, "b" * 32, None)]
    assert_exactly(UploadStateOut, render_upload_state(UploadState(DALLAS, 8 * 2**20, 13, held, WHEN)))


def test_the_upload_settings_are_exactly_an_upload_settings_out() -> None:
    assert_exactly(UploadSettingsOut, render_upload_settings(UploadsConfig()))


def test_a_part_url_is_exactly_a_part_url_out() -> None:
    part = PartUrl(3, "http://127.0.0.1:8333/cdn/key?partNumber=3", {"content-md5": "A" * 22 + "=="}, WHEN)
    assert_exactly(PartUrlOut, render_part_url(part))


def test_a_replica_and_a_server_reference_are_exactly_their_models() -> None:
    assert_exactly(ServerRef, render_ref(DALLAS))
    for status in ("present", "pending", "corrupt"):
        assert_exactly(ReplicaOut, render_replicas([(DALLAS, status)])[0])


def test_a_user_answer_is_exactly_a_user_out() -> None:
    admin = User(id=UUID, username="root", is_admin=True, permissions=())
    assert_exactly(UserOut, render_user(admin, 0))
    limited = User(
        id=UUID,
        username="alice",
        is_admin=False,
        permissions=tuple(PERMISSIONS[:2]),
        is_disabled=True,
        quota_bytes=10**9,
        zones=("USA", "Africa"),
    )
    assert_exactly(UserOut, render_user(limited, 5000))
    row = {"uuid": UUID, "username": "bob", "is_admin": 0, "permissions": "[]", "is_disabled": 0}
    assert_exactly(UserOut, render_row({**row, "quota_bytes": None, "zones": None, "used_bytes": 0}))


def test_a_link_answer_and_a_public_link_answer_are_exactly_their_models() -> None:
    assert_exactly(LinkOut, render_link(link_row(), "https://cdn.example"))
    assert_exactly(
        LinkOut, render_link(link_row(password_hash=None, expires_at=None, max_downloads=None), "https://cdn.example")
    )
    assert_exactly(PublicLinkOut, render_public(link_row()))
    assert_exactly(PublicLinkOut, render_public(link_row(password_hash=None, expires_at=None)))


def test_a_server_answer_is_exactly_a_server_out_with_or_without_its_statistics() -> None:
    assert_exactly(ServerOut, render_server(DALLAS, None))
    stats = {
        **{"files": 3, "bytes": 4096, "pending_jobs": 1, "verified_at": WHEN, "corrupt": 1, "unrecoverable": 0},
        **{"awaiting_verification": 2, "rejected_uploads": 1},
    }
    assert_exactly(ServerOut, render_server(DALLAS, stats))


def test_a_download_answer_is_exactly_a_download_out() -> None:
    for sha256 in (SHA, None):
        got = Download("http://127.0.0.1:8333/cdn/key?X-Amz-Signature=x", WHEN, DALLAS, "report.pdf", sha256, 1234)
        answer = download_answer(got, redirect=False)
        assert isinstance(answer.body, bytes)
        assert_exactly(DownloadOut, orjson.loads(answer.body))  # (bytes: the answer as it goes out)


class OneServer:
    def by_internal_id(self, server_id: int) -> Server | None:
        return DALLAS if server_id == 1 else None


def test_a_job_answer_is_exactly_a_job_out() -> None:
    app = web.Application()
    app[appkeys.SERVERS] = OneServer()  # type: ignore[assignment,misc]  # (the registry's one method used here)
    row = {
        "id": 42,
        "kind": "copy",
        "status": "failed",
        "attempts": 3,
        "last_error": "timed out",
        "file_uuid": FILE_UUID,
        "file_name": "report.pdf",
        "server_id": 1,
        "run_after": 1.7e9,
        "created_at": 1.7e9,
        "updated_at": 1.7e9,
    }
    assert_exactly(JobOut, render_job_row(app, row))
    assert_exactly(JobOut, render_job_row(app, {**row, "server_id": 2, "last_error": None, "status": "queued"}))


def test_a_webhook_its_creation_and_its_deliveries_are_exactly_their_models() -> None:
    hook = Webhook(3, UUID, "https://hooks.example/in?k=1", ("file.stored", "server.down"), WHEN)
    assert_exactly(WebhookOut, render_webhook(hook))
    assert_exactly(WebhookCreatedOut, render_created(hook, "whsec_" + "A" * 32))
    row = {
        "id": 9,
        "uuid": "msg_" + "0f" * 16,
        "event": "file.stored",
        "status": "delivered",
        "attempts": 2,
        "last_error": "HTTP 500: busy",
        "delivered_at": WHEN,
        "occurred_at": WHEN,
        "run_after": 1_800_000_000.5,
    }
    assert_exactly(DeliveryOut, render_delivery(row))
    for pending in ({"run_after": 0.0}, {"run_after": 1_800_000_000.5, "last_error": None}):
        assert_exactly(DeliveryOut, render_delivery({**row, "status": "pending", "delivered_at": None, **pending}))
