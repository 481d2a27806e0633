"""The dialplan: contexts ``call-center``, ``ivr-menu`` and ``outbound-callback``.

It follows the acceptance setup in ``shared/asterisk/recording-setup/extensions.conf`` and the
user's design (section 5): the AI route enters Stasis (Operadora answers and adds ExternalMedia
over ARI), extension 100 is the direct ``AudioSocket()`` route, 200 the human queue, 300 the IVR.
"""

from __future__ import annotations

from operadora.config import AriServerSettings, DialplanSettings, Settings
from operadora.dialplan.common import APP_VAR, HEADER, MEDIA_VAR, TRUNK, Target, gateways
from operadora.dialplan.conf import Option, context, document, extension, section


def globals_options(settings: Settings, server: AriServerSettings) -> list[Option]:
    return [(APP_VAR, server.app), (MEDIA_VAR, settings.asterisk.media_address)]


def call_center(settings: Settings, target: Target) -> str:
    dp = settings.dialplan
    stasis = ["NoOp(Operadora AI call ${CHANNEL} from ${CALLERID(num)})"]
    if dp.ari_transfer_handling:
        stasis.append(
            """ExecIf($["${CHANNEL(channeltype)}" = "PJSIP"]?"""
            "Set(PJSIP_TRANSFER_HANDLING()=ari-only))"
        )
    stasis += [
        f"Stasis(${{{APP_VAR}}},inbound,${{EXTEN}})",
        "NoOp(Left Stasis: STASISSTATUS=${STASISSTATUS})",
        "Hangup()",
    ]
    queue = [
        "NoOp(Human queue)",
        "Answer()",
        f"Queue({dp.queue_name},t,,,120)",
        "NoOp(QUEUESTATUS=${QUEUESTATUS})",
        "Hangup()",
    ]
    body = [
        extension(
            dp.ai_extension,
            stasis,
            "AI route: Operadora answers over ARI and brings the audio back with ExternalMedia\n"
            "(AudioSocket). REFER from a PJSIP phone reaches Operadora (ari-only).",
        ),
        extension("s", [f"Goto({dp.ai_extension},1)"]),
        extension(
            dp.audiosocket_extension,
            [
                "NoOp(Operadora AI over AudioSocket, no ARI control)",
                "Answer()",
                "Set(OPERADORA_UUID=${UUID()})",
                f"AudioSocket(${{OPERADORA_UUID}},${{{MEDIA_VAR}}})",
                "Hangup()",
            ],
            "Direct AudioSocket route (the design's extension 100): AI without transfers.",
        ),
        extension(dp.queue_extension, queue, f"Human agents: queue {dp.queue_name}."),
        extension(
            dp.ivr_extension,
            ["NoOp(IVR)", "Answer()", "Goto(ivr-menu,s,1)"],
            "Traditional IVR (ivr-menu below).",
        ),
    ]
    note = "Inbound calls: point trunks, gateways and DIDs here."
    if target == "freepbx":
        destination = f"{dp.context},{dp.ai_extension},1"
        note += f"\nFreePBX: add a Custom Destination {destination} for inbound routes."
    return context(dp.context, body, note)


def ivr_menu(dp: DialplanSettings) -> str:
    body = [
        extension("s", ["Background(basic-pbx-ivr-main)", "WaitExten(5)"]),
        extension("1", ["Playback(transfer)", f"Goto({dp.context},{dp.queue_extension},1)"]),
        extension("2", [f"Goto({dp.context},{dp.ai_extension},1)"]),
        extension("3", [f"Goto({dp.context},{dp.audiosocket_extension},1)"]),
        extension("i", ["Playback(invalid)", "Goto(s,1)"]),
        extension("t", ["Playback(vm-goodbye)", "Hangup()"]),
    ]
    return context("ivr-menu", body, "1: human queue, 2: AI agent, 3: AI over AudioSocket.")


def outbound_routes(settings: Settings, target: Target) -> list[str]:
    """Dial steps for callbacks, in the pipeline's route preference: DAHDI, gateway, trunk."""
    dp = settings.dialplan
    steps = []
    if dp.dahdi_group is not None:
        steps.append(f"Dial(DAHDI/g{dp.dahdi_group}/${{EXTEN}},60)")
    steps += [f"Dial(PJSIP/${{EXTEN}}@{gw.endpoint},60)" for gw in gateways(settings)]
    if dp.trunk_host:
        steps.append(f"Dial(PJSIP/${{EXTEN}}@{TRUNK},60)")
    if target == "freepbx" and not steps:
        steps.append("Dial(Local/${EXTEN}@outbound-allroutes,60)")
    return steps


def outbound_callback(settings: Settings, target: Target, notes: list[str]) -> str:
    routes = outbound_routes(settings, target)
    if not routes:
        notes.append(
            "outbound-callback has no route: configure hardware.gateway_addresses, "
            "dialplan.trunk_host or dialplan.dahdi_group"
        )
        routes = ["NoOp(No outbound route configured)", "Congestion(5)"]
    steps = ["NoOp(Operadora callback to ${EXTEN})", *routes, "Hangup()"]
    return context(
        "outbound-callback",
        [extension("_X.", steps)],
        "Callbacks: Operadora originates Local/<number>@outbound-callback; the ;2 half dials\n"
        "out here. Each Dial runs only if the one before did not connect.",
    )


def extensions_conf(
    settings: Settings, server: AriServerSettings, target: Target
) -> tuple[str, list[str]]:
    notes: list[str] = []
    parts = []
    if target == "asterisk":
        parts += [
            section(
                "general",
                [("static", "yes"), ("writeprotect", "yes"), ("clearglobalvars", "no")],
            ),
            section("globals", globals_options(settings, server)),
        ]
    parts += [
        call_center(settings, target),
        ivr_menu(settings.dialplan),
        outbound_callback(settings, target, notes),
    ]
    return document(HEADER.format(target=target), parts), notes
