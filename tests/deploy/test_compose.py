"""deploy/docker-compose.yml: no default credentials, and its wiring agrees with the Asterisk
configuration that `operadora asterisk-config` renders from the same environment."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from operadora.config import Settings, load_settings
from operadora.dialplan.render import render

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SECRETS = {"ARI_PASSWORD": "ari-Pw-1", "POSTGRES_PASSWORD": "pg-Pw-2", "REDIS_PASSWORD": "rd-Pw-3"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ escapes a dollar
_VAR = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution over every string of the loaded YAML."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg or ""
        return current or ""

    return _VAR.sub(sub, value)


def compose(env: dict[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()), env)
    return loaded


def service_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings an Operadora container builds from its environment."""
    for key in list(os.environ):
        if key.startswith("OPERADORA_") or key in ("ARI_PASSWORD", "ASTERISK_HOST", "ARI_USER"):
            monkeypatch.delenv(key, raising=False)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    return load_settings()


def test_every_secret_is_required_from_the_environment() -> None:
    for name in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            compose(env)
    raw = COMPOSE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"(:?[-?])?[^}]*\}", raw)
        assert uses and all(op == ":?" for op in uses), name


def test_no_literal_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = compose(SECRETS)
    for name, service in doc["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if "PASSWORD" in key:
                assert value in SECRETS.values(), (name, key)
    settings = service_settings(doc["services"]["operadora"], monkeypatch)
    assert settings.asterisk.servers[0].password is not None
    assert settings.asterisk.servers[0].password.get_secret_value() == SECRETS["ARI_PASSWORD"]
    assert SECRETS["POSTGRES_PASSWORD"] in settings.store.url.get_secret_value()
    assert settings.state.redis_url is not None
    assert SECRETS["REDIS_PASSWORD"] in settings.state.redis_url.get_secret_value()


@pytest.mark.parametrize("app", [None, "ventas-ai"])
def test_wiring_agrees_with_the_generated_asterisk_config(
    monkeypatch: pytest.MonkeyPatch, app: str | None
) -> None:
    env = dict(SECRETS) | ({"ARI_APP": app} if app else {})
    doc = compose(env)
    services = doc["services"]
    operadora = service_settings(services["operadora"], monkeypatch)
    generator = service_settings(services["asterisk-config"], monkeypatch)
    assert services["operadora"]["environment"] == services["asterisk-config"]["environment"]

    # the one-shot renders the files the Asterisk container copies in
    command = services["asterisk-config"]["command"]
    assert command[:2] == ["operadora", "asterisk-config"]
    out_dir = command[command.index("--out") + 1]
    assert "--show-secrets" in command
    volume = next(v for v in services["asterisk-config"]["volumes"] if v.endswith(":" + out_dir))
    assert volume.split(":")[0] + ":" + out_dir + ":ro" in services["asterisk"]["volumes"]
    assert services["asterisk"]["depends_on"]["asterisk-config"]["condition"] == (
        "service_completed_successfully"
    )
    entrypoint = (DEPLOY / "asterisk" / "entrypoint.sh").read_text()
    assert f"cp {out_dir}/*.conf /etc/asterisk/" in entrypoint

    files = render(generator, "asterisk", show_secrets=True).files
    server = operadora.asterisk.servers[0]
    # ARI: host is the asterisk service, port is what http.conf binds, on the compose network
    assert server.url == "http://asterisk:8088/ari"
    assert "asterisk" in services
    assert "bindport=8088\n" in files["http.conf"]
    assert "bindaddr=0.0.0.0\n" in files["http.conf"]
    assert not any("8088" in str(p) for p in services["asterisk"].get("ports", []))
    # credentials: ari.conf holds the user and password Operadora logs in with
    assert f"[{server.username}]\ntype=user\n" in files["ari.conf"]
    assert server.password is not None
    assert f"password={server.password.get_secret_value()}\n" in files["ari.conf"]
    # the Stasis application name
    assert server.app == (app or "callcenter-ai")
    assert f"OPERADORA_APP={server.app}\n" in files["extensions.conf"]
    # AudioSocket: Asterisk dials the operadora service on the media server's port
    media = operadora.asterisk.media_address
    host, port = media.split(":")
    assert host in services and int(port) == operadora.media.port
    assert operadora.media.host == "0.0.0.0"
    assert f"OPERADORA_MEDIA={media}\n" in files["extensions.conf"]


def test_ports_published(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose(SECRETS)["services"]
    api = services["operadora"]["ports"]
    assert api == ["127.0.0.1:8080:8080"]  # dashboard and API on loopback only
    settings = service_settings(services["operadora"], monkeypatch)
    assert settings.api.port == 8080
    asterisk_ports = services["asterisk"]["ports"]
    assert "5060:5060/udp" in asterisk_ports
    rtp = next(p for p in asterisk_ports if p.startswith("10000-"))
    low, high = (int(x) for x in rtp.split(":")[0].split("-"))
    rtp_conf = (DEPLOY / "asterisk" / "rtp.conf").read_text()
    assert f"rtpstart={low}\n" in rtp_conf and f"rtpend={high}\n" in rtp_conf
    for name in ("postgres", "redis"):
        assert "ports" not in services[name]  # reachable on the compose network only


def test_compose_has_the_four_services_and_images() -> None:
    services = compose(SECRETS)["services"]
    assert {"asterisk", "operadora", "redis", "postgres"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:")
    dockerfile = (DEPLOY / "asterisk" / "Dockerfile").read_text()
    assert "ASTERISK_VERSION=22" in dockerfile
    assert services["asterisk"]["build"]["args"]["ASTERISK_VERSION"].startswith("22")
    assert services["operadora"]["command"] == ["operadora", "serve"]
