"""Simulated people on the simulator's lines: personas calling in, extensions and queue members
answering what the PBX dials. These are the glue between the callers package and the
simulator's device hook (``operadora.sim.lines.Line``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from operadora.sim.callers.audio import CallerAudio
from operadora.sim.callers.extensions import (
    Directory,
    DirectorySettings,
    ExtensionAgent,
    ExtensionBehaviour,
)
from operadora.sim.callers.persona import CallerReport, EventSink, PersonaRun
from operadora.sim.callers.scenario import Persona
from operadora.voice.engines import SpeechToText, TextToSpeech

log = logging.getLogger(__name__)

LINE_RATE = 8000  # a phone line: slin at 8 kHz

# Who answers in the demo: sales picks up, billing is busy, anyone else never answers.
DEMO_DIRECTORY = DirectorySettings(
    extensions=[
        ExtensionBehaviour(
            endpoint="PJSIP/201",
            name="Sam (sales)",
            ring_s=2.0,
            talk_s=5.0,
            say="Hello, this is Sam from sales. How can I help you?",
        ),
        ExtensionBehaviour(endpoint="PJSIP/202", name="Billing desk", action="busy", ring_s=1.0),
        ExtensionBehaviour(
            endpoint="PJSIP/agent*",
            name="Support agent",
            ring_s=3.0,
            talk_s=5.0,
            say="Support, this is Alex speaking.",
        ),
    ],
    default_action="no_answer",
)

# Dialplan added to the simulator's for the demo: inbound DIDs into the AI (so call records
# carry the number the caller dialled), and the extensions the agent transfers to.
DID_CONTEXT = "from-trunk"
DEMO_DIALPLAN = """
[from-trunk]
exten => _+X.,1,NoOp(Inbound call to DID ${EXTEN})
 same => n,Stasis(${ARI_APP},inbound,${EXTEN})
 same => n,Hangup()
exten => _X.,1,Goto(+${EXTEN},1)

[call-center]
exten => 201,1,NoOp(Sales desk)
 same => n,Dial(PJSIP/201,20)
 same => n,Hangup()
exten => 202,1,NoOp(Billing desk)
 same => n,Dial(PJSIP/202,20)
 same => n,Hangup()
"""

DialHandler = Callable[[Any], Awaitable[None]]


def extension_dial_handler(
    directory: Directory,
    tts: TextToSpeech | None = None,
    on_decision: Callable[[str, str], None] | None = None,
) -> DialHandler:
    """The simulator's dial hook: whoever it dials behaves as the directory says."""

    async def handle(line: Any) -> None:
        decision = directory.decide(line.endpoint)
        if on_decision is not None:
            on_decision(line.endpoint, decision.action)
        audio = CallerAudio(LINE_RATE)
        line.attach(audio, audio)
        log.info("sim: %s rings; it will %s", line.endpoint, decision.action)
        try:
            await ExtensionAgent(decision, line, audio=audio, tts=tts).run()
        except Exception:  # one broken device never takes the simulator down
            log.exception("sim: the device on %s failed", line.endpoint)
        finally:
            line.close()

    return handle


async def call_in(
    simulator: Any,
    persona: Persona,
    tts: TextToSpeech,
    stt: SpeechToText | None = None,
    *,
    endpoint: str = "PJSIP/gateway-fxo-1",
    context: str = "call-center",
    extension: str = "110",
    on_line: Callable[[Any], None] | None = None,
    on_event: EventSink | None = None,
    send_silence: bool = True,
) -> CallerReport:
    """Place ``persona``'s call into the simulator (``context,extension,1``) and run it to the
    end; ``on_line`` sees the line (its ``channel_id``) as soon as the call exists."""
    audio = CallerAudio(LINE_RATE, send_silence=send_silence)
    line = simulator.inbound_call(
        endpoint,
        context=context,
        extension=extension,
        caller_id=str(persona.caller_id),
        variables={"OPERADORA_DID": persona.did},
    )
    if on_line is not None:
        on_line(line)
    line.attach(audio, audio)
    try:
        return await PersonaRun(persona, audio, line, tts, stt, on_event=on_event).run()
    finally:
        if not line.ended:
            await line.hangup()
        line.close()
