"""cdnstore.presign against botocore's own SigV4 presigner (no network).

botocore's clock is frozen by patching `botocore.auth.get_current_datetime`; each test also checks
that botocore really signed at the frozen time, so a botocore refactor cannot make them vacuous.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.config import Config

from cdnstore.models import S3Target
from cdnstore.presign import MAX_EXPIRES, Presigner, base_url, uri_encode
from cdnstore.storage import Storage, content_disposition

NOW = datetime(2026, 11, 24, 13, 14, 15, tzinfo=UTC)
TARGET = S3Target("http://127.0.0.1:21003", "files", "us-east-1", "cdnkey", "cdnsecret12345")
KEYS = [
    "u/42/photo.jpg",
    "with space.txt",
    "dir a/ünï cödé+%.txt",
    "plus+and%25percent",
    "emoji 😀/x~y_z-.bin",
    "a//b/./c/../d",
    "!#$&'()*,;=:@[]",
]
DISPOSITION = "attachment; filename=\"x.txt\"; filename*=UTF-8''%C3%BCn%C3%AF.txt"


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    # botocore formats its timestamp from a naive UTC datetime.
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    yield NOW


SESSION = botocore.session.get_session()


@functools.cache
def boto_client(target: S3Target) -> Any:
    """botocore's client for `target`, made once per process (loading the S3 model is ~0.8 s of CPU: most of
    what these tests cost, and one session loads it once for every target); only its presigner is used, which
    reads its clock (`frozen`) at each call."""
    return SESSION.create_client(
        "s3",
        endpoint_url=target.endpoint_url,
        region_name=target.region,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": target.addressing_style},
            request_checksum_calculation="when_required",
        ),
    )


def params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def assert_same(ours: str, theirs: str) -> None:
    assert params(theirs)["X-Amz-Date"] == [NOW.strftime("%Y%m%dT%H%M%SZ")]  # the freeze took effect
    assert ours == theirs


@pytest.mark.parametrize("key", KEYS)
def test_put_with_signed_headers_matches_botocore(frozen: datetime, key: str) -> None:
    theirs = boto_client(TARGET).generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "files",
            "Key": key,
            "ContentType": "image/png",
            "ContentLength": 1234,
            "Metadata": {"fileid": "f-42"},
        },
        ExpiresIn=3600,
    )
    ours = Presigner(TARGET).presign(
        "PUT",
        key,
        expires_in=3600,
        now=frozen,
        headers={"Content-Type": "image/png", "Content-Length": "1234", "x-amz-meta-fileid": "f-42"},
    )
    assert_same(ours, theirs)
    assert params(ours)["X-Amz-SignedHeaders"] == ["content-length;content-type;host;x-amz-meta-fileid"]


@pytest.mark.parametrize("key", KEYS)
def test_get_with_content_disposition_matches_botocore(frozen: datetime, key: str) -> None:
    theirs = boto_client(TARGET).generate_presigned_url(
        "get_object",
        Params={"Bucket": "files", "Key": key, "ResponseContentDisposition": DISPOSITION},
        ExpiresIn=600,
    )
    ours = Presigner(TARGET).presign(
        "GET", key, expires_in=600, now=frozen, query={"response-content-disposition": DISPOSITION}
    )
    assert_same(ours, theirs)
    assert params(ours)["response-content-disposition"] == [DISPOSITION]


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("http://127.0.0.1:21003", "127.0.0.1:21003"),
        ("http://s3.example:80", "s3.example"),
        ("https://s3.example:443/", "s3.example"),
        ("https://s3.example:8443", "s3.example:8443"),
        ("http://[::1]:9000", "[::1]:9000"),
    ],
)
def test_host_and_region_variants_match_botocore(frozen: datetime, endpoint: str, host: str) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    target = S3Target(endpoint, "my-bucket", "eu-central-1", "AKIDEXAMPLE", secret)
    presigner = Presigner(target)
    assert presigner.host == host
    theirs = boto_client(target).generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": "k ü"}, ExpiresIn=MAX_EXPIRES
    )
    ours = presigner.presign("GET", "k ü", expires_in=MAX_EXPIRES, now=frozen)
    # botocore keeps an explicit default port in the URL text; the signature (Host) omits it.
    assert params(ours) == params(theirs)
    assert urlsplit(ours).path == urlsplit(theirs).path


@pytest.mark.parametrize(
    "endpoint", ["https://s3.example.com", "http://s3.example.com:9000", "https://s3.example.com/"]
)
@pytest.mark.parametrize("key", KEYS[:3])
def test_virtual_hosted_style_matches_botocore(frozen: datetime, endpoint: str, key: str) -> None:
    target = S3Target(endpoint, "my-bucket", "eu-central-1", "AKIDEXAMPLE", "secret", "virtual")
    theirs = boto_client(target).generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": key, "ResponseContentDisposition": DISPOSITION}
    )
    ours = Presigner(target).presign(
        "GET", key, expires_in=3600, now=frozen, query={"response-content-disposition": DISPOSITION}
    )
    assert urlsplit(ours).netloc == "my-bucket." + urlsplit(endpoint).netloc
    assert_same(ours, theirs)
    assert base_url(target) == f"{urlsplit(endpoint).scheme}://my-bucket.{urlsplit(endpoint).netloc}"


def test_a_put_that_may_write_its_key_once_signs_if_none_match_as_botocore_does(frozen: datetime) -> None:
    theirs = boto_client(TARGET).generate_presigned_url(
        "put_object",
        Params={"Bucket": "files", "Key": "k", "ContentType": "text/plain", "ContentLength": 5, "IfNoneMatch": "*"},
        ExpiresIn=3600,
    )
    ours = Presigner(TARGET).presign(
        "PUT",
        "k",
        expires_in=3600,
        now=frozen,
        headers={"Content-Type": "text/plain", "Content-Length": "5", "If-None-Match": "*"},
    )
    assert_same(ours, theirs)
    assert params(ours)["X-Amz-SignedHeaders"] == ["content-length;content-type;host;if-none-match"]


def test_bucket_level_request_matches_botocore(frozen: datetime) -> None:
    client = boto_client(TARGET)
    theirs = client.generate_presigned_url("head_bucket", Params={"Bucket": "files"}, ExpiresIn=60)
    ours = Presigner(TARGET).presign("HEAD", "", expires_in=60, now=frozen)
    assert_same(ours, theirs)


def test_signing_key_follows_the_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    presigner = Presigner(TARGET)
    for moment in (NOW, NOW.replace(hour=23, minute=59, second=59), NOW + timedelta(days=1), NOW):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda m=moment: m.replace(tzinfo=None))
        theirs = boto_client(TARGET).generate_presigned_url(
            "get_object", Params={"Bucket": "files", "Key": "k"}, ExpiresIn=60
        )
        assert presigner.presign("GET", "k", expires_in=60, now=moment) == theirs


def test_naive_and_other_timezones_mean_utc() -> None:
    presigner = Presigner(TARGET)
    expected = presigner.presign("GET", "k", expires_in=60, now=NOW)
    assert presigner.presign("GET", "k", expires_in=60, now=NOW.replace(tzinfo=None)) == expected
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert presigner.presign("GET", "k", expires_in=60, now=tokyo) == expected


@pytest.mark.parametrize("expires_in", [0, -1, MAX_EXPIRES + 1])
def test_expiry_out_of_range(expires_in: int) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        Presigner(TARGET).presign("GET", "k", expires_in=expires_in)


def test_bad_arguments() -> None:
    presigner = Presigner(TARGET)
    with pytest.raises(ValueError, match="host"):
        presigner.presign("PUT", "k", expires_in=60, headers={"Host": "evil"})
    with pytest.raises(ValueError, match="reserved"):
        presigner.presign("GET", "k", expires_in=60, query={"X-Amz-Expires": "1"})
    with pytest.raises(ValueError, match="endpoint_url"):
        Presigner(S3Target("ftp://x", "b", "r", "a", "s"))


def test_uri_encode_keeps_only_unreserved() -> None:
    assert uri_encode("aZ09-._~ /+%ü") == "aZ09-._~%20%2F%2B%25%C3%BC"
    assert uri_encode("a b/c", keep_slash=True) == "a%20b/c"


def test_a_presign_derives_the_signing_key_once_a_day_and_then_costs_one_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps a presign cheap (botocore's takes ~150 µs; the download link's cost is bench scenario 1's):
    SigV4's key chain, four HMACs, is derived once per UTC day, and each URL then signs with one."""
    digests: list[bytes] = []
    real = hmac.digest

    def counted(key: bytes, message: bytes, digest: str) -> bytes:
        digests.append(message)
        return real(key, message, digest)

    monkeypatch.setattr(hmac, "digest", counted)  # (presign.py calls hmac.digest through its module)
    presigner = Presigner(TARGET)
    morning = datetime(2026, 12, 7, 8, tzinfo=UTC)
    presigner.presign("GET", "a", expires_in=60, now=morning)
    assert len(digests) == 4 + 1
    presigner.presign("GET", "u/42/photo.jpg", expires_in=3600, now=morning + timedelta(hours=15))
    assert len(digests) == 4 + 1 + 1
    presigner.presign("GET", "a", expires_in=60, now=morning + timedelta(days=1))
    assert len(digests) == 4 + 1 + 1 + 4 + 1 and digests[-5] == b"20261208"


# --- the Storage wrappers (no network either; async: a Storage is made in a running loop, as in the daemon) ---


async def test_storage_presign_put_matches_botocore(frozen: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage()
    real = Presigner.presign

    def at_frozen_time(self: Presigner, *args: Any, **kwargs: Any) -> str:
        return str(real(self, *args, **{**kwargs, "now": frozen}))

    monkeypatch.setattr(Presigner, "presign", at_frozen_time)
    url, headers = storage.presign_put(
        TARGET,
        "dir a/ü.pdf",
        content_type="application/pdf",
        size=99,
        expires_in=900,
        metadata={"FileId": "f-1", "version": "3"},
    )
    assert headers == {
        "Content-Type": "application/pdf",
        "Content-Length": "99",
        "x-amz-meta-fileid": "f-1",
        "x-amz-meta-version": "3",
    }
    theirs = boto_client(TARGET).generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "files",
            "Key": "dir a/ü.pdf",
            "ContentType": "application/pdf",
            "ContentLength": 99,
            "Metadata": {"fileid": "f-1", "version": "3"},
        },
        ExpiresIn=900,
    )
    assert_same(url, theirs)
    url2 = storage.presign_get(TARGET, "dir a/ü.pdf", filename="ünï.txt", expires_in=60)
    assert params(url2)["response-content-disposition"] == [content_disposition("ünï.txt")]


async def test_storage_presign_part_matches_botocore(frozen: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Presigner.presign

    def at_frozen_time(self: Presigner, *args: Any, **kwargs: Any) -> str:
        return str(real(self, *args, **{**kwargs, "now": frozen}))

    monkeypatch.setattr(Presigner, "presign", at_frozen_time)
    md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="
    upload_id = "a1b2/c3+d4=="  # (any text: it is encoded like any query value)
    url, headers = Storage().presign_part(TARGET, "dir a/ü.bin", upload_id, 3, size=5 << 20, md5=md5, expires_in=900)
    assert headers == {"Content-Length": str(5 << 20), "Content-MD5": md5}
    theirs = boto_client(TARGET).generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": "files",
            "Key": "dir a/ü.bin",
            "UploadId": upload_id,
            "PartNumber": 3,
            "ContentLength": 5 << 20,
            "ContentMD5": md5,
        },
        ExpiresIn=900,
    )
    assert params(url)["X-Amz-SignedHeaders"] == ["content-length;content-md5;host"]
    assert_same(url, theirs)


@pytest.mark.parametrize(
    ("content_type", "size", "metadata"),
    [
        ("text/plain\r\nX: y", 1, None),
        ("text/plain", 1, {"a b": "x"}),
        ("text/plain", 1, {"k": "ü"}),
        ("text/plain", -1, None),
    ],
)
async def test_storage_presign_put_validates(content_type: str, size: int, metadata: dict[str, str] | None) -> None:
    with pytest.raises(ValueError):
        Storage().presign_put(TARGET, "k", content_type=content_type, size=size, expires_in=60, metadata=metadata)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("ünï.txt", "attachment; filename=\"uni.txt\"; filename*=UTF-8''%C3%BCn%C3%AF.txt"),
        ('a "b"\\c;d.txt', "attachment; filename=\"a _b__c;d.txt\"; filename*=UTF-8''a%20%22b%22%5Cc%3Bd.txt"),
        ("日本.txt", "attachment; filename=\"download.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        ("日本", "attachment; filename=\"download\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"),
        ("2024年報告.zip", "attachment; filename=\"2024_.zip\"; filename*=UTF-8''2024%E5%B9%B4%E5%A0%B1%E5%91%8A.zip"),
        ("50%.txt", "attachment; filename=\"50_.txt\"; filename*=UTF-8''50%25.txt"),
        (".profile", "attachment; filename=\".profile\"; filename*=UTF-8''.profile"),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected
