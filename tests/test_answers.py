"""Every answer has exactly the fields its *Out model (api/schemas.py, hence the OpenAPI document) declares.

The answers are dicts built by hand (the download answer is the hot path: no model on the way out); each
render function is checked here against its model on representative records, so the document cannot drift
from the answers unnoticed: a field added, dropped, renamed or retyped on one side fails here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import orjson
from aiohttp import web

from cdnstore import appkeys
from cdnstore.api.files import (
    download_answer,
    render_file,
    render_link_request,
    render_part_url,
    render_replicas,
    render_upload,
    render_upload_settings,
    render_upload_state,
    render_with_servers,
)
from cdnstore.api.history import render_entry
from cdnstore.api.jobs import render_job_row
from cdnstore.api.keys import render_key, render_new_key
from cdnstore.api.links import render_link, render_public
from cdnstore.api.oidc import render_methods
from cdnstore.api.ops import geoip_check
from cdnstore.api.schemas import (
    AuthMethodsOut,
    CapabilitiesOut,
    DeliveryOut,
    DownloadOut,
    DownloadStatsOut,
    FileOut,
    FileUploadOut,
    HistoryOut,
    ImportOut,
    JobOut,
    KeyCreatedOut,
    KeyOut,
    LinkOut,
    Out,
    PartUrlOut,
    PublicLinkOut,
    PublicRequestOut,
    ReadyCheck,
    ReplicaOut,
    SenderUploadOut,
    ServerOut,
    ServerRef,
    TrashedFileOut,
    UploadRequestOut,
    UploadSettingsOut,
    UploadStateOut,
    UserOut,
    WebhookCreatedOut,
    WebhookOut,
)
from cdnstore.api.servers import render_capabilities, render_import, render_ref, render_server
from cdnstore.api.stats import render_day
from cdnstore.api.trash import render_trashed
from cdnstore.api.upload_requests import render_public_request, render_request
from cdnstore.api.users import render_account, render_user
from cdnstore.api.webhooks import render_created, render_delivery, render_webhook
from cdnstore.config import UploadsConfig
from cdnstore.files import Download, FileRow, Multipart, PresignedPut, Upload
from cdnstore.geo import GeoLocator
from cdnstore.history import HistoryEntry
from cdnstore.imports import Import, ReportedKey
from cdnstore.job_queue import JobEntry
from cdnstore.keys import ApiKey
from cdnstore.links import Link, LinkRequest, SharedFile
from cdnstore.models import PERMISSIONS, Capabilities, DeliveryStatus, Health, LinkState, Server, User
from cdnstore.probe import cors_rule
from cdnstore.stats import DayStats
from cdnstore.storage import PartInfo
from cdnstore.trash import TrashedFile
from cdnstore.upload_requests import UploadRequest
from cdnstore.uploads import PartUrl, UploadState
from cdnstore.users import Account
from cdnstore.webhook_queue import LoggedDelivery
from cdnstore.webhooks import Webhook

UUID = "6f1c2a9e-0b7d-4c1e-9a55-3d2f8e4b7c10"
FILE_UUID = "0d4e5f60-7182-4394-a5b6-c7d8e9f00112"
WHEN = "2026-11-28T11:43:24.123456Z"
SHA = "ab" * 32
DALLAS = Server(
    id=UUID,
    pk=1,
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
    each value of the model's type (strict: no coercion), the same after a round trip through the model.
    Validated as the JSON a client gets (strict Python validation would want a status as its enum's member,
    where a row gives its value)."""
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(answer) == required | set(optional), model.__name__
    parsed = model.model_validate_json(orjson.dumps(answer), strict=True)
    assert parsed.model_dump(mode="json", exclude_unset=True) == answer


FILE = FileRow(
    id=3,
    uuid=FILE_UUID,
    owner_id=1,
    name="report.pdf",
    created_at=WHEN,
    updated_at=WHEN,
    current_version_id=7,
    latest_version_id=7,
    expires_at=None,
    received_via=None,
    size=1234,
    content_type="application/pdf",
    zone="USA",
    sha256=SHA,
)


def file_row(**changed: Any) -> FileRow:
    return replace(FILE, **changed)


def trashed(**changed: Any) -> TrashedFile:
    return TrashedFile(**{**asdict(FILE), **changed})


def shared_file(name: str = "report.pdf", size: int = 1234) -> SharedFile:
    return SharedFile(3, FILE_UUID, name, size, "application/pdf", "key", 7, WHEN)


def link(files: list[SharedFile] | None = None, **changed: Any) -> Link:
    made = Link(
        id=9,
        uuid=UUID,
        token="t" * 43,
        password_hash="$argon2id$...",
        expires_at=WHEN,
        max_downloads=5,
        downloads=2,
        created_at=WHEN,
        owner_id=1,
        owner_disabled=False,
        file_uuid=FILE_UUID,
        state=LinkState.ACTIVE,
        files=(shared_file(),) if files is None else tuple(files),
    )
    return replace(made, **changed)


def test_a_file_answer_is_exactly_a_file_out_stored_or_uploading() -> None:
    assert_exactly(FileOut, render_file(file_row()))
    assert_exactly(FileOut, render_file(file_row(current_version_id=None, sha256=None)))
    assert_exactly(FileOut, render_with_servers(file_row(), {7: [(DALLAS, "present")]}), optional=("servers",))
    assert_exactly(FileOut, render_with_servers(file_row(current_version_id=None), {}), optional=("servers",))
    assert_exactly(FileOut, render_file(file_row(expires_at=WHEN, received_via=UUID)))


def test_a_file_in_the_trash_is_exactly_a_trashed_file_out() -> None:
    assert_exactly(TrashedFileOut, render_trashed(trashed(deleted_at=WHEN, purge_at=WHEN)))
    assert_exactly(TrashedFileOut, render_trashed(trashed(deleted_at=WHEN, purge_at=WHEN, expires_at=WHEN)))


def test_an_announced_upload_is_exactly_a_file_upload_out_put_or_multipart() -> None:
    put = PresignedPut("http://127.0.0.1:8333/cdn/key?X-Amz-Signature=x", {"content-type": "text/plain"}, WHEN, DALLAS)
    for send in (put, Multipart(8 * 2**20, 13, WHEN, DALLAS)):
        answer = render_upload(Upload(True, file_row(current_version_id=None), send))
        assert_exactly(FileUploadOut, answer)
        assert answer["upload"]["method"] == ("PUT" if send is put else "multipart")  # (the union's two sides)
        assert_exactly(SenderUploadOut, {**answer, "upload_token": "t" * 60})


def request_row(**changed: Any) -> UploadRequest:
    made = UploadRequest(
        id=5,
        uuid=UUID,
        owner_id=1,
        token="t" * 43,
        message="The tax papers, please",
        password_hash="$argon2id$...",
        expires_at="2999-01-01T00:00:00.000Z",
        max_files=10,
        max_bytes=10**9,
        closed_at=None,
        created_at=WHEN,
        updated_at=WHEN,
        owner="alice",
        files=2,
        bytes=4096,
    )
    return replace(made, **changed)


def test_an_upload_request_answer_and_its_public_answer_are_exactly_their_models() -> None:
    unlimited = {"password_hash": None, "expires_at": None, "max_files": None, "max_bytes": None, "message": None}
    for row in (request_row(), request_row(closed_at=WHEN), request_row(**unlimited)):
        assert_exactly(UploadRequestOut, render_request(row, "https://cdn.example", WHEN))
        assert_exactly(PublicRequestOut, render_public_request(row))
    assert render_request(request_row(closed_at=WHEN), "https://cdn.example", WHEN)["is_open"] is False
    assert render_request(request_row(), "https://cdn.example", "2999-01-01T00:00:00.001Z")["is_open"] is False


def test_an_upload_asking_for_a_link_is_exactly_a_file_upload_out_with_its_link() -> None:
    put = PresignedPut("http://127.0.0.1:8333/cdn/key?X-Amz-Signature=x", {"content-type": "text/plain"}, WHEN, DALLAS)
    answer = render_upload(Upload(True, file_row(current_version_id=None), put))
    link = render_link_request(LinkRequest(UUID, "t" * 43, "[]"), "https://cdn.example")
    assert_exactly(FileUploadOut, {**answer, "link": link}, optional=("link",))
    assert link["url"] == f"https://cdn.example/s/{'t' * 43}"


def key_row(**changed: Any) -> ApiKey:
    key = ApiKey(4, UUID, "nightly backup", "cdn_AbCdEfGh", '["read", "upload"]', WHEN, WHEN, WHEN)
    return replace(key, **changed)


def test_a_history_row_and_a_day_of_download_statistics_are_exactly_their_models() -> None:
    renamed = '{"old_name": "a.pdf", "new_name": "b.pdf"}'
    entry = HistoryEntry(id=5, uuid=UUID, event="file.renamed", object_id=FILE_UUID, data=renamed, created_at=WHEN)
    assert_exactly(HistoryOut, render_entry(entry))
    assert_exactly(HistoryOut, render_entry(replace(entry, object_id=None, data="{}")))
    assert_exactly(DownloadStatsOut, render_day(DayStats(day="2026-12-07", server="dallas", downloads=3, bytes=1234)))


def test_a_key_answer_is_exactly_a_key_out_and_a_new_one_a_key_created_out() -> None:
    assert_exactly(KeyOut, render_key(key_row()))
    assert_exactly(KeyOut, render_key(key_row(expires_at=None, last_used_at=None, scopes='["admin"]')))
    assert_exactly(KeyCreatedOut, render_new_key(key_row(last_used_at=None), "cdn_" + "s" * 43))


def test_the_sign_in_methods_answer_is_exactly_an_auth_methods_out() -> None:
    assert_exactly(AuthMethodsOut, render_methods(True, "Example SSO"))
    assert_exactly(AuthMethodsOut, render_methods(True, None))
    assert_exactly(AuthMethodsOut, render_methods(False, "Example SSO"))


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
    admin = User(id=UUID, pk=1, username="root", is_admin=True, permissions=())
    assert_exactly(UserOut, render_user(admin, 0))
    limited = User(
        id=UUID,
        pk=2,
        username="alice",
        is_admin=False,
        permissions=tuple(PERMISSIONS[:2]),
        is_disabled=True,
        quota_bytes=10**9,
        zones=("USA", "Africa"),
    )
    assert_exactly(UserOut, render_user(limited, 5000))
    lives = User(id=UUID, pk=1, username="carol", is_admin=False, permissions=(), max_file_lifetime=86400 * 30)
    assert_exactly(UserOut, render_user(lives, 0))
    row = {"id": 3, "uuid": UUID, "username": "bob", "is_admin": 0, "permissions": "[]", "is_disabled": 0}
    row |= {"max_file_lifetime": None, "default_file_lifetime": 3600}
    assert_exactly(UserOut, render_account(Account.of({**row, "quota_bytes": None, "zones": None, "used_bytes": 0})))


def test_a_link_answer_and_a_public_link_answer_are_exactly_their_models() -> None:
    several = [shared_file(), shared_file("notes.txt", 0)]
    for made in (
        link(),
        link(password_hash=None, expires_at=None, max_downloads=None),
        link(several, file_uuid=None, state=LinkState.EXPIRED),  # a link to several files
        link([], state=LinkState.FILES_GONE),  # every file deleted since
    ):
        assert_exactly(LinkOut, render_link(made, "https://cdn.example"))
    for made in (link(), link(password_hash=None, expires_at=None), link(several, file_uuid=None)):
        assert_exactly(PublicLinkOut, render_public(made))


IMPORT_ROW = {
    "id": 7,
    "uuid": FILE_UUID,
    "server_id": 1,
    "owner_id": 2,
    "owner": "alice",
    "prefix": "photos/",
    "strip_prefix": 1,
    "state": "running",
    "after_key": "photos/b.jpg",
    "objects_seen": 1200,
    "files_adopted": 1100,
    "bytes": 123456,
    "errors": 3,
    "last_error": None,
    "created_at": WHEN,
    "updated_at": WHEN,
    "finished_at": None,
    "owner_deleted": 0,
}
IMPORT = Import.of(IMPORT_ROW)


def test_a_server_answer_is_exactly_a_server_out_with_or_without_its_statistics() -> None:
    assert_exactly(ServerOut, render_server(DALLAS, None, WHEN))
    stats = {
        **{"files": 3, "bytes": 4096, "pending_jobs": 1, "verified_at": WHEN, "corrupt": 1, "unrecoverable": 0},
        **{"awaiting_verification": 2, "rejected_uploads": 1},
    }
    assert_exactly(ServerOut, render_server(DALLAS, stats, WHEN))
    proved = Capabilities(WHEN, False, True, True, False, json.dumps(cors_rule("https://files.example.com")), "off")
    probed = replace(DALLAS, public_url="https://s3.example.com", capabilities=proved, events_seen_at=WHEN)
    assert_exactly(ServerOut, render_server(probed, {**stats, "import_progress": render_import(IMPORT)}, WHEN))
    assert_exactly(CapabilitiesOut, render_capabilities(probed, WHEN) or {})


def test_an_import_answer_is_exactly_an_import_out() -> None:
    reported = [ReportedKey("a/b.txt", "not a valid file name: must not contain / or \\ (a name, not a path)")]
    assert_exactly(ImportOut, render_import(replace(IMPORT, last_error="the server is off"), reported))
    assert_exactly(ImportOut, render_import(Import.of({**IMPORT_ROW, "state": "done", "finished_at": WHEN}), []))


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
    assert_exactly(JobOut, render_job_row(app, JobEntry.of(row)))
    queued = JobEntry.of({**row, "server_id": 2, "last_error": None, "status": "queued"})
    assert_exactly(JobOut, render_job_row(app, queued))


def test_the_readiness_geoip_check_is_exactly_a_ready_check_with_its_build_time() -> None:
    with GeoLocator() as locator:
        assert_exactly(ReadyCheck, geoip_check(locator), optional=("built_at",))


def test_a_webhook_its_creation_and_its_deliveries_are_exactly_their_models() -> None:
    hook = Webhook(3, UUID, "https://hooks.example/in?k=1", ("file.stored", "server.down"), WHEN)
    assert_exactly(WebhookOut, render_webhook(hook))
    assert_exactly(WebhookCreatedOut, render_created(hook, "whsec_" + "A" * 32))
    sent = LoggedDelivery(
        9, "msg_" + "0f" * 16, "file.stored", DeliveryStatus.DELIVERED, 2, "HTTP 500: busy", WHEN, WHEN, 1_800_000_000.5
    )
    assert_exactly(DeliveryOut, render_delivery(sent))
    for run_after, last_error in ((0.0, sent.last_error), (1_800_000_000.5, None)):
        pending = replace(
            sent, status=DeliveryStatus.PENDING, delivered_at=None, run_after=run_after, last_error=last_error
        )
        assert_exactly(DeliveryOut, render_delivery(pending))
