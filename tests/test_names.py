"""File names: hostile ones are 422 naming the field, wherever a name is taken; Unicode ones are kept in
NFC and downloads save under exactly that name (RFC 6266 `filename*`), with a plain ASCII fallback."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from apihelp import Answer, Api, Session, fetch
from reliability import LEDGER

from testbed.seaweed import WeedCluster

HUGE = "n" * 10_000

HOSTILE = {
    "": "empty",
    "nul\x00.txt": "NUL",
    "unit\x1fsep.txt": "a C0 control",
    "del\x7f.txt": "DEL",
    "bell\x07": "BEL",
    "line\nbreak.txt": "a newline",
    "cod.\u202eexe.txt": "a right-to-left override (shows as cod.txt.exe)",
    "zero\u200bwidth.txt": "a zero-width space",
    "report\u200d.pdf": "a joiner between ASCII letters: only disguises the name",
    "\ufeffbom.txt": "a byte order mark",
    "para\u2029graph": "a paragraph separator",
    "\U000e0041tagged": "a tag character outside a flag",
    "a/b.txt": "a slash",
    "..\\..\\boot.ini": "backslashes",
    ".": "dot",
    "..": "dot dot",
    "   ": "only white space",
    "\u3000": "only an ideographic space",
    " leading.txt": "white space first",
    "trailing.txt\t": "white space last",
    "x" * 256: "256 characters",
    "e\u0301" * 256: "256 characters after NFC (512 before)",
    HUGE: "10 000 characters",
}

# Accepted, and kept in NFC: emoji (with joiners and a subdivision flag), CJK, combining marks, RTL
# text, quotes and the characters Content-Disposition and URLs care about.
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
UNICODE = [
    f"{FAMILY} at the beach {SCOTLAND}.jpg",
    "写真と動画 2024.zip",
    "Cafe\u0301 de\u0301ja\u0300 vu.txt",  # decomposed: stored composed
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627.pdf",  # Hebrew and Arabic, no overrides
    'say "hi"; 100% done, ok=1 [a&b] #tag?.txt',
    "\u0915\u094d\u200d\u0937 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt",  # joiners in Devanagari, Persian
    "\u5199" * 251 + ".bin",  # 255 characters, 765 bytes of UTF-8
    unicodedata.normalize("NFD", "\u1fa2") * 255,  # 1020 code points, 255 after NFC
    "...",
]


def disposition_name(header: str) -> tuple[str, str]:
    """(the exact name from `filename*`, the ASCII fallback from `filename`)."""
    exact = re.search(r"filename\*=UTF-8''([^;\s]+)", header)
    fallback = re.search(r'filename="([^"]*)"', header)
    assert exact and fallback, header
    return unquote(exact[1], errors="strict"), fallback[1]


async def owner_with_a_server(api: Api, weed: WeedCluster, bucket: str) -> Session:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "dallas", bucket)
    return admin


def named_field(answer: Answer, field: str) -> None:
    problem = answer.problem(422, "invalid_field")
    assert problem["detail"].startswith(f"{field}:") and problem["field"] == field, problem
    assert len(problem["detail"]) < 300, "the detail does not echo the value back"


async def test_a_10_kb_name_is_422_naming_the_field_wherever_a_name_is_taken(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await owner_with_a_server(api, weed, bucket)
    file_id = (await admin.announce("short.txt", b"x"))["file"]["id"]
    server_id = (await admin.get("/api/v1/servers")).expect(200)["items"][0]["id"]
    answers = {
        "name": [
            await admin.post("/api/v1/files", json={"name": HUGE, "size": 1}),
            await admin.patch(f"/api/v1/files/{file_id}", json={"name": HUGE}),
            await admin.post(
                "/api/v1/servers",
                json={
                    "name": HUGE,
                    "endpoint_url": "http://x",
                    "bucket": "b-b",
                    "access_key": "a",
                    "secret_key": "s",
                    "location": "l",
                    "zone": "z",
                    "latitude": 0,
                    "longitude": 0,
                    "is_on": False,
                    "is_active": False,
                },
            ),
            await admin.patch(f"/api/v1/servers/{server_id}", json={"name": HUGE}),
        ],
        "username": [
            await admin.post("/api/v1/users", json={"username": HUGE, "password": "pass-word-1"}),
            await api.call("POST", "/api/v1/auth/login", json={"username": HUGE, "password": "x"}),
        ],
        "q": [await admin.get("/api/v1/files", params={"q": HUGE[:1000]})],  # 10 kB would be a 414 (the URL)
    }
    for field, refused in answers.items():
        for answer in refused:
            named_field(answer, field)
    everything = [a for refused in answers.values() for a in refused]
    LEDGER.add("hostile file names", bad_inputs=len(everything), server_errors=sum(a.status >= 500 for a in everything))


async def test_hostile_names_are_422_naming_the_field_on_announce_and_rename(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await owner_with_a_server(api, weed, bucket)
    file_id = (await admin.announce("innocent.txt", b"x"))["file"]["id"]
    answers = []
    for name, why in HOSTILE.items():
        for answer in (
            await admin.post("/api/v1/files", json={"name": name, "size": 1}),
            await admin.patch(f"/api/v1/files/{file_id}", json={"name": name}),
        ):
            assert answer.status == 422, (why, answer.body)
            named_field(answer, "name")
            answers.append(answer)
    # A lone surrogate is valid JSON but no Unicode text.
    for method, path, body in (
        ("POST", "/api/v1/files", '{"name": "half\\ud800.txt", "size": 1}'),
        ("PATCH", f"/api/v1/files/{file_id}", '{"name": "half\\ud800.txt"}'),
    ):
        answer = await admin.call(method, path, data=body, headers={"Content-Type": "application/json"})
        named_field(answer, "name")
        answers.append(answer)
    listed = (await admin.get("/api/v1/files")).expect(200)["items"]
    drift = sum(f["name"] != "innocent.txt" for f in listed) + (len(listed) != 1)
    assert drift == 0, listed
    LEDGER.add(
        "hostile file names",
        bad_inputs=len(answers),
        files_checked=len(listed),
        drift=drift,
        server_errors=sum(a.status >= 500 for a in answers),
    )


async def test_unicode_names_are_kept_in_nfc_and_downloads_save_under_exactly_that_name(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await owner_with_a_server(api, weed, bucket)
    data = b"unicode names\n"
    drift, checked = 0, []
    for name in UNICODE:
        stored = unicodedata.normalize("NFC", name)
        file_id = (await admin.upload(name, data))["file"]["id"]
        file = await admin.wait_stored(file_id)
        link, body = await admin.download(file_id)
        status, _, headers = await fetch(link["url"])
        exact, fallback = disposition_name(headers["Content-Disposition"])
        checked.append((name, file["name"], exact, fallback))
        drift += (file["name"] != stored) + (exact != stored) + (body != data) + (status != 200)
        assert fallback.isascii() and fallback.isprintable() and fallback, fallback
    assert drift == 0, [c for c in checked if c[1] != c[2]]
    assert len(UNICODE[-2]) == 1020 and len(checked[-2][1]) == 255

    # Renamed to another Unicode name: the next download saves under it; a search finds it.
    first = (await admin.get("/api/v1/files?q=" + "\u5199\u771f")).expect(200)["items"]
    assert [f["name"] for f in first] == [unicodedata.normalize("NFC", UNICODE[1])]
    renamed = await admin.patch(f"/api/v1/files/{first[0]['id']}", json={"name": "\U0001f4f7 \u2192 ok.zip"})
    assert renamed.expect(200)["name"] == "\U0001f4f7 \u2192 ok.zip"
    link = (await admin.get(f"/api/v1/files/{first[0]['id']}/download")).expect(200)
    status, _, headers = await fetch(link["url"])
    assert status == 200 and disposition_name(headers["Content-Disposition"])[0] == "\U0001f4f7 \u2192 ok.zip"
    history = (await admin.get("/api/v1/history?event=file.renamed")).expect(200)["items"][0]["data"]
    # The JSON answer carried both names intact (NFC, the emoji as one character, no lone surrogate).
    assert history == {"old_name": unicodedata.normalize("NFC", UNICODE[1]), "new_name": "\U0001f4f7 \u2192 ok.zip"}
    LEDGER.add("hostile file names", files_checked=len(checked) + 1, drift=drift)
