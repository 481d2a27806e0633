"""PJSIP snippets: a transport, one endpoint per FXO gateway, and a SIP trunk."""

from __future__ import annotations

from dataclasses import dataclass, field

from operadora.config import Settings
from operadora.dialplan.common import FREEPBX_TRANSPORT, TRUNK, Target, gateways
from operadora.dialplan.conf import Option, hidden, section
from operadora.hardware.gateway import split_address


@dataclass(slots=True)
class PjsipParts:
    transport: list[str] = field(default_factory=list)
    endpoint: list[str] = field(default_factory=list)
    aor: list[str] = field(default_factory=list)
    identify: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    registration: list[str] = field(default_factory=list)


def _endpoint(name: str, settings: Settings, transport: str, extra: list[Option]) -> str:
    options: list[Option] = [
        ("type", "endpoint"),
        ("transport", transport),
        ("context", settings.dialplan.context),
        ("disallow", "all"),
        ("allow", ",".join(settings.dialplan.codecs)),
        ("direct_media", "no"),
        ("rtp_symmetric", "yes"),
        ("force_rport", "yes"),
        ("rewrite_contact", "yes"),
        ("dtmf_mode", "rfc4733"),
        ("aors", name),
        *extra,
    ]
    return section(name, options)


def pjsip_parts(
    settings: Settings, target: Target, show_secrets: bool, notes: list[str]
) -> PjsipParts:
    dp = settings.dialplan
    parts = PjsipParts()
    transport = "operadora-udp" if target == "asterisk" else FREEPBX_TRANSPORT
    if target == "asterisk":
        parts.transport.append(
            section(transport, [("type", "transport"), ("protocol", "udp"), ("bind", dp.sip_bind)])
        )
    for gw in gateways(settings):
        parts.endpoint.append(_endpoint(gw.endpoint, settings, transport, []))
        parts.aor.append(
            section(
                gw.endpoint,
                [
                    ("type", "aor"),
                    ("contact", f"sip:{gw.host}:{gw.port}"),
                    ("qualify_frequency", "30"),
                ],
            )
        )
        parts.identify.append(
            section(
                gw.endpoint, [("type", "identify"), ("endpoint", gw.endpoint), ("match", gw.host)]
            )
        )
    if dp.trunk_host:
        _trunk(settings, dp.trunk_host, transport, show_secrets, notes, parts)
    if not parts.endpoint:
        notes.append(
            "no gateway or trunk configured: set hardware.gateway_addresses or "
            "dialplan.trunk_host for PJSIP snippets"
        )
    return parts


def _trunk(
    settings: Settings,
    trunk_host: str,
    transport: str,
    show_secrets: bool,
    notes: list[str],
    parts: PjsipParts,
) -> None:
    dp = settings.dialplan
    host, port = split_address(trunk_host, 5060)
    uri = f"sip:{host}:{port}"
    extra: list[Option] = []
    if dp.trunk_username:
        extra.append(("outbound_auth", TRUNK))
        password = dp.trunk_password.get_secret_value() if dp.trunk_password else ""
        auth: list[Option] = [
            ("type", "auth"),
            ("auth_type", "userpass"),
            ("username", dp.trunk_username),
        ]
        if not password:
            notes.append("trunk password is not set: OPERADORA_DIALPLAN__TRUNK_PASSWORD")
            auth.append((";", "password missing: set OPERADORA_DIALPLAN__TRUNK_PASSWORD"))
        elif show_secrets:
            auth.append(("password", password))
        else:
            auth.append(hidden("password"))
        parts.auth.append(section(TRUNK, auth))
        parts.registration.append(
            section(
                TRUNK,
                [
                    ("type", "registration"),
                    ("transport", transport),
                    ("outbound_auth", TRUNK),
                    ("server_uri", uri),
                    ("client_uri", f"sip:{dp.trunk_username}@{host}"),
                    ("retry_interval", "60"),
                ],
            )
        )
    parts.endpoint.append(_endpoint(TRUNK, settings, transport, [("from_domain", host), *extra]))
    parts.aor.append(
        section(TRUNK, [("type", "aor"), ("contact", uri), ("qualify_frequency", "60")])
    )
    parts.identify.append(
        section(TRUNK, [("type", "identify"), ("endpoint", TRUNK), ("match", host)])
    )
