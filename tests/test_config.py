"""config.toml plus CDNSTORE_SECTION_KEY overrides, validated with errors that name key and value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cdnstore import config
from cdnstore.app import create_app
from cdnstore.config import Config
from cdnstore.errors import ConfigError

ROOT = Path(__file__).parent.parent


def test_defaults_match_the_contract() -> None:
    cfg = Config()
    assert (cfg.http.host, cfg.http.port, cfg.http.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert cfg.http.trusted_proxies == ()
    assert cfg.database.path == "var/cdnstore.sqlite3"
    assert (cfg.auth.secret_key, cfg.auth.access_token_ttl, cfg.auth.refresh_token_ttl) == ("", 900, 2592000)
    assert (cfg.geoip.database, cfg.geoip.fallback_ip, cfg.events.token) == ("", "", "")


def test_the_shipped_config_toml_lists_every_key_with_its_default() -> None:
    shipped = tomllib.loads((ROOT / "config.toml").read_text())
    defaults = Config().model_dump()
    assert set(shipped) == set(defaults)
    for section, keys in defaults.items():
        assert set(shipped[section]) == set(keys), section
        for key, value in keys.items():
            got = shipped[section][key]
            assert (tuple(got) if isinstance(got, list) else got) == value, f"{section}.{key}"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[http]\nport = 9000\n[auth]\nsecret_key = "from-the-file-123"\n')
    cfg = config.load(
        path,
        env={
            "CDNSTORE_HTTP_PORT": "9100",
            "CDNSTORE_HTTP_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16",
            "CDNSTORE_EVENTS_TOKEN": "tok-of-16-chars!",
        },
    )
    assert cfg.http.port == 9100
    assert cfg.http.trusted_proxies == ("10.0.0.1", "10.1.0.0/16")
    assert cfg.auth.secret_key == "from-the-file-123"
    assert cfg.events.token == "tok-of-16-chars!"
    assert config.load(path, env={"CDNSTORE_HTTP_TRUSTED_PROXIES": '["::1"]'}).http.trusted_proxies == ("::1",)


def test_an_events_token_under_16_characters_is_a_config_error_that_hides_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[events]\ntoken = "short-secret"\n')
    with pytest.raises(ConfigError, match=r"events\.token = \(hidden\): .*at least 16 characters") as caught:
        config.load(path, env={})
    assert "short-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="at least 16"):
        config.load(env={"CDNSTORE_EVENTS_TOKEN": "x" * 15})
    assert config.load(env={"CDNSTORE_EVENTS_TOKEN": ""}).events.token == ""  # empty: events disabled
    assert config.load(env={"CDNSTORE_EVENTS_TOKEN": "x" * 16}).events.token == "x" * 16


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CDNSTORE_OIDC_ISSUER": "https://auth.example.com"}, r"\[oidc\]: client_id is required when issuer is set"),
        ({"CDNSTORE_OIDC_PASSWORD_LOGIN": "false"}, r"\[oidc\]: password_login = false needs single sign-on"),
        ({"CDNSTORE_OIDC_ISSUER": "auth.example.com", "CDNSTORE_OIDC_CLIENT_ID": "c"}, r"oidc\.issuer = 'auth"),
        ({"CDNSTORE_OIDC_SCOPES": "profile email"}, r"oidc\.scopes = 'profile email'.*must include openid"),
    ],
)
def test_a_single_sign_on_setting_that_cannot_work_is_an_error_that_never_shows_the_client_secret(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config.load(env={**env, "CDNSTORE_OIDC_CLIENT_SECRET": "the-idp-client-secret"})
    assert "the-idp-client-secret" not in str(caught.value)


def test_the_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("[http]\nport = 9200\n")
    assert config.load(env={"CDNSTORE_CONFIG": str(path)}).http.port == 9200
    with pytest.raises(ConfigError, match="not found"):
        config.load(env={"CDNSTORE_CONFIG": str(tmp_path / "missing.toml")})


def test_the_upload_commands_variables_are_no_settings_of_the_daemon() -> None:
    """A shell that exported CDNSTORE_URL and CDNSTORE_TOKEN for `cdnstore upload` still runs `cdnstore serve`."""
    env = {"CDNSTORE_URL": "https://files.example.com", "CDNSTORE_TOKEN": "cdn_x", "CDNSTORE_HTTP_PORT": "9300"}
    assert config.load(env=env).http.port == 9300


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[http]\nport = 'abc'\n", {}, r"http\.port = 'abc'.*integer"),
        ("", {"CDNSTORE_HTTP_PORT": "70000"}, r"http\.port = '70000'.*CDNSTORE_HTTP_PORT"),
        ("[http]\nprot = 1\n", {}, r"http\.prot: unknown setting"),
        ("[htp]\nport = 1\n", {}, r"htp: unknown setting"),
        ("", {"CDNSTORE_HTTP_PRT": "1"}, r"CDNSTORE_HTTP_PRT: no such setting"),
        ("[http]\ntrusted_proxies = ['10.0.0.300']\n", {}, r"http\.trusted_proxies.*10\.0\.0\.300"),
        ("[http]\npublic_url = 'example.com'\n", {}, r"http\.public_url.*http"),
        ("[geoip]\nfallback_ip = 'nowhere'\n", {}, r"geoip\.fallback_ip = 'nowhere'"),
        ("[auth]\naccess_token_ttl = 0\n", {}, r"auth\.access_token_ttl = 0"),
        ("[http\n", {}, r"not valid TOML"),
    ],
)
def test_a_bad_setting_is_an_error_naming_key_and_value(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.load(path, env=env)


def test_serving_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError, match=r"auth\.secret_key"):
        create_app(Config())
    with pytest.raises(ConfigError, match=r"auth\.secret_key: must be at least 16"):
        create_app(Config.model_validate({"auth": {"secret_key": "short"}}))
