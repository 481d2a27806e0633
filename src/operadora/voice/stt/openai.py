"""Any OpenAI-compatible ``/v1/audio/transcriptions`` server (OpenAI, faster-whisper-server,
whisper.cpp server, vLLM with a Whisper model)."""

from __future__ import annotations

import io
import wave

import aiohttp

from operadora.voice.engines import STT_RATE, Float32Audio, Transcript
from operadora.voice.errors import ProviderError, http_status_retryable
from operadora.voice.pcm import to_pcm16


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


class OpenAiStt:
    name = "openai-stt"

    def __init__(self, base_url: str, *, api_key: str | None, model: str, timeout_s: float) -> None:
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def transcribe(self, audio: Float32Audio, language: str | None = None) -> Transcript:
        form = aiohttp.FormData()
        form.add_field(
            "file",
            wav_bytes(to_pcm16(audio), STT_RATE),
            filename="turn.wav",
            content_type="audio/wav",
        )
        form.add_field("model", self._model)
        form.add_field("response_format", "json")
        if language:
            form.add_field("language", language)
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(self._url, data=form, headers=self._headers) as response,
            ):
                if response.status != 200:
                    body = (await response.text())[:200]
                    raise ProviderError(
                        self.name,
                        f"HTTP {response.status}: {body}",
                        retryable=http_status_retryable(response.status),
                    )
                data = await response.json(content_type=None)
        except TimeoutError as exc:
            raise ProviderError(self.name, "timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(self.name, str(exc), retryable=True) from exc
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise ProviderError(self.name, "response has no text field")
        return Transcript(data["text"].strip(), data.get("language") or language)
