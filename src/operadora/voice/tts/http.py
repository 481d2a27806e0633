"""Speech synthesis over HTTP: an OpenAI-compatible ``/v1/audio/speech`` endpoint, which is also
how F5-TTS and Piper servers are commonly exposed. The reply is read as a WAV stream and played
as it arrives."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import aiohttp

from operadora.voice.errors import ProviderError, http_status_retryable


class WavStreamParser:
    """Sans-I/O: WAV bytes in (any chunking), PCM out; learns the rate from the header."""

    MAX_HEADER = 1 << 16

    def __init__(self) -> None:
        self._buffer = b""
        self.sample_rate: int | None = None
        self._in_data = False

    def feed(self, data: bytes) -> bytes:
        if self._in_data:
            return data
        self._buffer += data
        if len(self._buffer) < 12:
            return b""
        if self._buffer[:4] != b"RIFF" or self._buffer[8:12] != b"WAVE":
            raise ProviderError("http-tts", "response is not a WAV stream")
        pos = 12
        while len(self._buffer) >= pos + 8:
            chunk_id, size = (
                self._buffer[pos : pos + 4],
                struct.unpack_from("<I", self._buffer, pos + 4)[0],
            )
            if chunk_id == b"fmt ":
                if len(self._buffer) < pos + 8 + 16:
                    break
                fmt, channels, rate, _, _, bits = struct.unpack_from(
                    "<HHIIHH", self._buffer, pos + 8
                )
                if fmt != 1 or channels != 1 or bits != 16:
                    raise ProviderError("http-tts", "expected mono 16-bit PCM WAV")
                self.sample_rate = rate
            elif chunk_id == b"data":
                if self.sample_rate is None:
                    raise ProviderError("http-tts", "WAV data before its format")
                self._in_data = True
                rest = self._buffer[pos + 8 :]
                self._buffer = b""
                return rest
            pos += 8 + size + (size & 1)
        if len(self._buffer) > self.MAX_HEADER:
            raise ProviderError("http-tts", "WAV header too large")
        return b""


class HttpTts:
    name = "http-tts"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str,
        voice: str | None,
        timeout_s: float,
        sample_rate: int = 24000,
    ) -> None:
        self._url = base_url.rstrip("/") + "/audio/speech"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._voice = voice or "alloy"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._rate = sample_rate

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def synthesize(self, text: str, language: str | None = None) -> AsyncIterator[bytes]:
        body = {"model": self._model, "input": text, "voice": self._voice, "response_format": "wav"}
        parser = WavStreamParser()
        odd = b""
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(self._url, json=body, headers=self._headers) as response,
            ):
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise ProviderError(
                        self.name,
                        f"HTTP {response.status}: {detail}",
                        retryable=http_status_retryable(response.status),
                    )
                async for data in response.content.iter_any():
                    pcm = odd + parser.feed(data)
                    if parser.sample_rate is not None:
                        self._rate = parser.sample_rate
                    cut = len(pcm) - (len(pcm) % 2)
                    pcm, odd = pcm[:cut], pcm[cut:]
                    if pcm:
                        yield pcm
        except TimeoutError as exc:
            raise ProviderError(self.name, "timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(self.name, str(exc), retryable=True) from exc
