"""``operadora asterisk-config``: the Asterisk (or FreePBX) configuration Operadora needs.

Pure functions from ``Settings`` to file texts: ``render(settings, target)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operadora.config import Settings
from operadora.dialplan.ari import ari_conf, ari_user, http_conf
from operadora.dialplan.common import HEADER, Target, ari_server, http_listen
from operadora.dialplan.conf import document, section
from operadora.dialplan.extensions import extensions_conf, globals_options
from operadora.dialplan.pjsip import pjsip_parts
from operadora.dialplan.queues import queue_section

__all__ = ["AsteriskConfig", "Target", "render"]


@dataclass(slots=True)
class AsteriskConfig:
    target: Target
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def render(
    settings: Settings,
    target: Target = "asterisk",
    show_secrets: bool = False,
    server_name: str | None = None,
) -> AsteriskConfig:
    """All files for ``target``; ``notes`` say what is missing or must be done by hand."""
    server = ari_server(settings, server_name)
    config = AsteriskConfig(target=target)
    notes = config.notes
    extensions, ext_notes = extensions_conf(settings, server, target)
    notes += ext_notes
    pjsip = pjsip_parts(settings, target, show_secrets, notes)
    header = HEADER.format(target=target)
    if target == "asterisk":
        config.files["extensions.conf"] = extensions
        config.files["ari.conf"] = ari_conf(server, show_secrets, notes)
        config.files["http.conf"] = http_conf(settings, server, notes)
        config.files["pjsip.conf"] = document(
            header,
            [
                *pjsip.transport,
                *pjsip.endpoint,
                *pjsip.aor,
                *pjsip.identify,
                *pjsip.auth,
                *pjsip.registration,
            ],
        )
        config.files["queues.conf"] = document(
            header,
            [section("general", [("persistentmembers", "yes")]), queue_section(settings.dialplan)],
        )
        return config
    config.files["extensions_custom.conf"] = extensions
    config.files["globals_custom.conf"] = (
        "; " + header + "\n" + "".join(f"{k}={v}\n" for k, v in globals_options(settings, server))
    )
    config.files["ari_additional_custom.conf"] = document(
        header, [ari_user(server, show_secrets, notes)]
    )
    config.files["queues_custom.conf"] = document(header, [queue_section(settings.dialplan)])
    for kind in ("endpoint", "aor", "identify", "auth", "registration"):
        sections = getattr(pjsip, kind)
        if sections:
            config.files[f"pjsip.{kind}_custom.conf"] = document(header, sections)
    port, prefix = http_listen(server)
    notes.append(
        "FreePBX: Settings > Advanced Settings: Enable the mini-HTTP Server = Yes, "
        f"HTTP Bind Address = {settings.dialplan.http_bind}, HTTP Bind Port = {port}"
        + (f", HTTP Prefix = {prefix}" if prefix else "")
    )
    return config
