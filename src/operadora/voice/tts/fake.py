"""A tone synthesiser for tests and demos: a clause becomes a tone as long as it would be spoken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np


class ToneTts:
    name = "fake-tts"

    def __init__(
        self, sample_rate: int = 16000, ms_per_char: float = 50.0, delay_s: float = 0.03
    ) -> None:
        self._rate = sample_rate
        self.ms_per_char = ms_per_char
        self.delay_s = delay_s
        self.clauses: list[str] = []

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        self.clauses.append(text)
        await asyncio.sleep(self.delay_s)
        samples = int(len(text) * self.ms_per_char * self._rate / 1000)
        t = np.arange(samples, dtype=np.float32) / self._rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
        yield tone.tobytes()
