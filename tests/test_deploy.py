"""deploy/ and the Dockerfile stay correct without a Docker engine or systemd running: parse them and
check that the commands, routes, settings and paths they name exist."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from cdnstore import __main__ as cli
from cdnstore import config
from cdnstore.app import ROUTES
from cdnstore.config import Config
from cdnstore.geo import default_database_path

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
EVENTS_ROUTE = re.compile(r"^/api/v1/events/s3/(?P<name>[^/]+)$")


def routes() -> set[tuple[str, str]]:
    return {(ep.method, ep.path) for ep in ROUTES}


def cli_commands() -> set[str]:
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def assert_valid_settings(env: dict[str, str]) -> Config:
    """CDNSTORE_* variables (compose's ${VAR...} substituted) load as a valid configuration."""

    def substitute(text: str) -> str:  # ${VAR:-default} -> default, ${VAR:?error} -> a value
        return re.sub(r"\$\{\w+(?::-([^}]*)|[^}]*)\}", lambda m: m[1] if m[1] is not None else "x" * 20, text)

    values = {k: substitute(str(v)) for k, v in env.items() if k.startswith("CDNSTORE_")}
    return config.load(ROOT / "config.toml", env=values)


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def test_the_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    lines = dockerfile()
    stages = [args for word, args in lines if word == "FROM"]
    assert len(stages) >= 2 and stages[0].endswith(" AS build")
    assert all("-slim" in s for s in stages)
    users = [args for word, args in lines if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    final = lines[max(i for i, (w, _) in enumerate(lines) if w == "FROM") :]
    assert any(w == "COPY" and a.startswith("--from=build") for w, a in final)
    assert not any(w == "RUN" and "pip install" in a for w, a in final)  # the venv comes built


def test_the_dockerfile_copies_what_exists_and_runs_real_commands() -> None:
    lines = dockerfile()
    for word, args in lines:
        if word == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    cmd = [json_args(a) for w, a in lines if w == "CMD"][-1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts and cmd[1] in cli_commands()
    health = next(a for w, a in lines if w == "HEALTHCHECK")
    path = re.search(r"http://127\.0\.0\.1:[^/]+(/\w+)", health)
    assert path is not None and ("GET", path[1]) in routes() and path[1] == "/healthz"
    probe = json_args(health.split(" CMD ", 1)[1])
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "HEALTHCHECK", "exec")


def test_the_dockerfile_configures_through_the_environment_and_ships_geolite2() -> None:
    lines = dockerfile()
    env: dict[str, str] = {}
    for word, args in lines:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    cfg = assert_valid_settings(env)
    assert cfg.http.host == "0.0.0.0"
    exposed = [a for w, a in lines if w == "EXPOSE"]
    assert exposed == [str(cfg.http.port)]
    assert any(w == "VOLUME" and str(Path(cfg.database.path).parent) in a for w, a in lines)
    # The build stage checks the GeoLite2 database is in the install, as it is here.
    assert any(w == "RUN" and "default_database_path" in a for w, a in lines)
    assert default_database_path().stat().st_size > 1_000_000


def json_args(text: str) -> list[str]:
    import json

    value = json.loads(text)
    assert isinstance(value, list), f"not the exec form: {text}"
    return [str(v) for v in value]


# --- compose ----------------------------------------------------------------------------------------


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_builds_cdnstore_from_this_repository_with_valid_settings() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    app = services["cdnstore"]
    context = (DEPLOY / app["build"]["context"]).resolve()
    assert (context / app["build"]["dockerfile"]).is_file() and context == ROOT.resolve()
    cfg = assert_valid_settings(app["environment"])
    grace = int(re.fullmatch(r"(\d+)s", app["stop_grace_period"])[1])  # type: ignore[index]
    assert grace > cfg.jobs.shutdown_grace
    assert str(cfg.http.port) in app["expose"]  # the proxy and the webhooks reach it; clients go through nginx


def test_compose_puts_a_reverse_proxy_with_timeouts_in_front_of_cdnstore() -> None:
    # (Checked on main: cdnstore's own port faced the clients, with no proxy and no timeouts.)
    services = compose()["services"]
    assert isinstance(services, dict)
    proxy, app = services["proxy"], services["cdnstore"]
    assert "ports" not in app and any(p.endswith(":8080") for p in proxy["ports"])
    mounted = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"]}
    conf = (DEPLOY / "nginx.conf").read_text()
    assert mounted["./nginx.conf"] == "/etc/nginx/nginx.conf"
    for directive in (
        "client_header_timeout",
        "client_body_timeout",
        "keepalive_timeout",
        "send_timeout",
        "proxy_read_timeout",
        "limit_conn per_address",
    ):
        assert re.search(rf"^\s*{directive}\b", conf, re.MULTILINE), directive
    assert "proxy_pass http://cdnstore" in conf and "server cdnstore:8080" in conf
    assert "X-Forwarded-For $remote_addr" in conf
    trusted = assert_valid_settings(app["environment"]).http.trusted_proxies
    assert trusted == (proxy["networks"]["default"]["ipv4_address"],)
    assert int(app["ulimits"]["nofile"]) >= Config().http.max_connections


def test_compose_points_every_minio_webhook_at_its_server_in_cdnstore() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    token = services["cdnstore"]["environment"]["CDNSTORE_EVENTS_TOKEN"]
    minios = {name: s for name, s in services.items() if "minio/minio" in str(s.get("image", ""))}
    assert len(minios) >= 2
    setup = str(services["minio-setup"]["command"])
    for name, service in minios.items():
        env = service["environment"]
        ids = {k.rsplit("_", 1)[1] for k in env if k.startswith("MINIO_NOTIFY_WEBHOOK_")}
        assert len(ids) == 1, ids
        target = ids.pop()
        assert env[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{target}"] == "on"
        assert env[f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{target}"] == token
        url = env[f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{target}"]
        host, path = re.fullmatch(r"http://([^/:]+):8080(/.*)", url).groups()  # type: ignore[union-attr]
        assert host == "cdnstore"
        match = EVENTS_ROUTE.match(path)
        assert match and match["name"] == name and ("POST", "/api/v1/events/s3/{server_name}") in routes()
        port = re.search(r"--address\s*['\"]?,?\s*['\"]?:(\d+)", str(service["command"]))
        assert port is not None and f"{name}:{port[1]}" in setup
        assert f"arn:minio:sqs::{target}:webhook" in setup
    assert "mc event add" in setup and "--event put,delete" in setup


# --- systemd ----------------------------------------------------------------------------------------


def unit() -> dict[str, list[str]]:
    """key -> values (systemd allows a key more than once)."""
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / "cdnstore.service").read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_daemon_as_its_own_user_hardened() -> None:
    u = unit()
    assert u["User"] == ["cdnstore"] and u["Restart"] == ["on-failure"]
    for key, value in {
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert u[key] == [value], key
    state = f"/var/lib/{u['StateDirectory'][0]}"
    assert u["ReadWritePaths"] == [state] and u["WorkingDirectory"] == [state]
    assert any(v.startswith("CDNSTORE_CONFIG=/etc/cdnstore/") for v in u["Environment"])
    start, pre = shlex.split(u["ExecStart"][0]), shlex.split(u["ExecStartPre"][0])
    assert start[0] == pre[0] and Path(start[0]).name == "cdnstore"
    assert start[1:] == ["serve"] and pre[1:] == ["init"] and {"serve", "init"} <= cli_commands()
    stop = int(u["TimeoutStopSec"][0])
    assert stop > Config().jobs.shutdown_grace


def test_the_unit_gives_the_daemon_the_open_files_its_connections_need() -> None:
    # (Checked on main: no LimitNOFILE, so systemd's 1024, which 1000 idle connections used up.)
    from cdnstore.api.server import FILE_RESERVE

    u = unit()
    assert int(u["LimitNOFILE"][0]) >= Config().http.max_connections + FILE_RESERVE
    assert u["SystemCallErrorNumber"] == ["EPERM"]  # a refused setrlimit fails, it does not kill the daemon


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names /opt/cdnstore/venv; verify checks that the program exists, so point it at this venv's.
    here = Path(sys.executable).parent / "cdnstore"
    assert here.exists()
    text = (DEPLOY / "cdnstore.service").read_text().replace("/opt/cdnstore/venv/bin/cdnstore", str(here))
    (tmp_path / "cdnstore.service").write_text(text)
    done = subprocess.run(
        [tool, "verify", str(tmp_path / "cdnstore.service")], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "cdnstore.service" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
