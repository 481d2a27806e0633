"""A scripted recogniser for tests and demos: returns its transcripts in turn after a delay."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from operadora.voice.engines import Float32Audio, Transcript


class ScriptedStt:
    name = "fake-stt"

    def __init__(self, transcripts: Sequence[str] = ("hello",), delay_s: float = 0.05) -> None:
        self._transcripts = list(transcripts)
        self._next = 0
        self.delay_s = delay_s
        self.calls: list[int] = []  # samples per call

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        self.calls.append(int(audio.size))
        await asyncio.sleep(self.delay_s)
        text = self._transcripts[min(self._next, len(self._transcripts) - 1)]
        self._next += 1
        return Transcript(text, language)
