"""``ari.conf`` (Operadora's ARI user) and ``http.conf`` (the server ARI is served on)."""

from __future__ import annotations

from urllib.parse import urlsplit

from operadora.config import AriServerSettings, Settings
from operadora.dialplan.common import HEADER, http_listen
from operadora.dialplan.conf import Option, document, hidden, section

TLS_CERT = "/etc/asterisk/keys/asterisk.crt"
TLS_KEY = "/etc/asterisk/keys/asterisk.key"


def ari_user(server: AriServerSettings, show_secrets: bool, notes: list[str]) -> str:
    options: list[Option] = [("type", "user"), ("read_only", "no")]
    password = server.password.get_secret_value() if server.password else ""
    if not password:
        notes.append(
            f"ARI password for {server.name} is not set: set ARI_PASSWORD (or "
            "asterisk.servers[].password in the config file) and render again; "
            "Asterisk refuses an ARI user without one"
        )
        options.append((";", "password missing: set ARI_PASSWORD"))
    elif show_secrets:
        options += [("password", password), ("password_format", "plain")]
    else:
        options += [hidden("password"), ("password_format", "plain")]
    return section(server.username, options, f"ARI user of Operadora ({server.name})")


def ari_conf(server: AriServerSettings, show_secrets: bool, notes: list[str]) -> str:
    general = section("general", [("enabled", "yes"), ("pretty", "no")])
    return document(
        HEADER.format(target="asterisk"), [general, ari_user(server, show_secrets, notes)]
    )


def http_conf(settings: Settings, server: AriServerSettings, notes: list[str]) -> str:
    """HTTP for an ``http://`` ARI url; TLS on its port for ``https://`` (plain HTTP then
    stays on loopback, on another port)."""
    port, prefix = http_listen(server)
    bind = settings.dialplan.http_bind
    if urlsplit(server.url).scheme == "https":
        options: list[Option] = [
            ("enabled", "yes"),
            ("bindaddr", "127.0.0.1"),
            ("bindport", "8088" if port != 8088 else "8080"),
            ("tlsenable", "yes"),
            ("tlsbindaddr", f"{bind}:{port}"),
            ("tlscertfile", TLS_CERT),
            ("tlsprivatekey", TLS_KEY),
        ]
        notes.append(f"https ARI url: put Asterisk's certificate in {TLS_CERT} and {TLS_KEY}")
    else:
        options = [("enabled", "yes"), ("bindaddr", bind), ("bindport", str(port))]
        options.append(("tlsenable", "no"))
    if prefix:
        options.append(("prefix", prefix))
    return document(
        HEADER.format(target="asterisk"),
        [section("general", options, "ARI and its WebSocket are served here")],
    )
