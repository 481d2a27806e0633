"""The HTTP providers against local fake OpenAI-compatible servers (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from operadora.voice.agent.llm import LlmAgent, OpenAiChatClient
from operadora.voice.engines import AgentAction, AgentText
from operadora.voice.errors import ProviderError
from operadora.voice.stt.openai import OpenAiStt
from operadora.voice.tts.http import HttpTts

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + (
        b"data: [DONE]\n\n"
    )


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}]}


class FakeChat:
    """Streams scripted completions and records every request body."""

    def __init__(self, replies: list[list[dict[str, Any]]]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        assert request.headers.get("Authorization") == "Bearer sk-test"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in self.replies.pop(0):
            await response.write(_sse([chunk])[: -len(b"data: [DONE]\n\n")])
            await asyncio.sleep(0.001)
        await response.write(b"data: [DONE]\n\n")
        return response


def _agent(url: str, timeout_s: float = 5.0) -> LlmAgent:
    client = OpenAiChatClient(
        url, api_key="sk-test", model="qwen3-14b", temperature=0.2, timeout_s=timeout_s
    )
    return LlmAgent(
        client,
        system_prompt="You are a phone agent.",
        greeting="Hello!",
        transfer_phrase="One moment.",
    )


async def test_llm_streams_tokens_and_keeps_memory() -> None:
    chat = FakeChat(
        [
            [_delta(role="assistant"), _delta(content="We open "), _delta(content="at nine. ")],
            [_delta(content="You are welcome.")],
        ]
    )
    async with serve({"/v1/chat/completions": chat.handle}) as url:
        conversation = _agent(url).conversation("c1")
        assert conversation.greeting() == "Hello!"
        outs = [o async for o in conversation.reply("When do you open?")]
        assert outs == [AgentText("We open "), AgentText("at nine. ")]
        conversation.heard("We open at nine.", interrupted=False)
        [o async for o in conversation.reply("Thanks")]
    first, second = chat.requests
    assert first["stream"] is True and first["model"] == "qwen3-14b"
    assert {t["function"]["name"] for t in first["tools"]} == {
        "transfer",
        "attended_transfer",
        "queue",
        "callback",
        "hangup",
    }
    roles = [(m["role"], m["content"]) for m in second["messages"]]
    assert roles == [
        ("system", "You are a phone agent."),
        ("assistant", "Hello!"),
        ("user", "When do you open?"),
        ("assistant", "We open at nine. "),
        ("user", "Thanks"),
    ]


async def test_llm_tool_calls_become_actions() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "attended_transfer", "arguments": ""},
    }
    chat = FakeChat(
        [
            [
                _delta(tool_calls=[call]),
                _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"target": "10'}}]),
                _delta(
                    tool_calls=[
                        {"index": 0, "function": {"arguments": '1", "summary": "billing"}'}}
                    ]
                ),
            ],
            [_delta(content="Okay.")],
        ]
    )
    async with serve({"/v1/chat/completions": chat.handle}) as url:
        conversation = _agent(url).conversation("c2")
        outs = [o async for o in conversation.reply("Let me talk to Ana in billing")]
        assert outs == [
            AgentText("One moment."),
            AgentAction("attended_transfer", "101", {"summary": "billing"}),
        ]
        [o async for o in conversation.reply("ok")]
    history = chat.requests[1]["messages"]
    assert history[2]["tool_calls"][0]["function"]["name"] == "attended_transfer"
    assert history[3] == {"role": "tool", "tool_call_id": "call_1", "content": "ok"}


async def test_llm_memory_keeps_only_what_was_heard() -> None:
    chat = FakeChat([[_delta(content="Our plans are basic, pro and enterprise.")], []])
    async with serve({"/v1/chat/completions": chat.handle}) as url:
        conversation = _agent(url).conversation("c3")
        [o async for o in conversation.reply("What plans do you have?")]
        conversation.heard("Our plans are basic,", interrupted=True)
        [o async for o in conversation.reply("Wait")]
    assert chat.requests[1]["messages"][-2] == {
        "role": "assistant",
        "content": "Our plans are basic, [interrupted]",
    }


async def test_llm_errors_are_normalised() -> None:
    async def overloaded(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="")

    async with serve({"/v1/chat/completions": overloaded}) as url:
        with pytest.raises(ProviderError) as err:
            [o async for o in _agent(url).conversation("c").reply("hi")]
        assert err.value.retryable and "503" in str(err.value)
    async with serve({"/v1/chat/completions": slow}) as url:
        with pytest.raises(ProviderError) as err:
            [o async for o in _agent(url, timeout_s=0.2).conversation("c").reply("hi")]
        assert err.value.retryable and "timed out" in str(err.value)


async def test_openai_transcription() -> None:
    seen: dict[str, Any] = {}

    async def transcriptions(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read()), "rb") as wav:
            seen["rate"], seen["frames"] = wav.getframerate(), wav.getnframes()
        seen["model"], seen["language"] = form["model"], form["language"]
        return web.json_response({"text": " hola "})

    async with serve({"/v1/audio/transcriptions": transcriptions}) as url:
        stt = OpenAiStt(url, api_key=None, model="whisper-1", timeout_s=5)
        transcript = await stt.transcribe(np.zeros(8000, np.float32), "es")
    assert transcript.text == "hola"
    assert seen == {"rate": 16000, "frames": 8000, "model": "whisper-1", "language": "es"}


async def test_openai_transcription_client_error_is_not_retryable() -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=400, text="bad audio")

    async with serve({"/v1/audio/transcriptions": bad}) as url:
        stt = OpenAiStt(url, api_key="k", model="whisper-1", timeout_s=5)
        with pytest.raises(ProviderError) as err:
            await stt.transcribe(np.zeros(800, np.float32))
    assert not err.value.retryable


async def test_http_tts_streams_wav() -> None:
    pcm = (np.arange(4800, dtype=np.int16) % 100).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(pcm)
    body = buffer.getvalue()

    async def speech(request: web.Request) -> web.StreamResponse:
        data = await request.json()
        assert data["input"] == "Hello there." and data["response_format"] == "wav"
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        for pos in range(0, len(body), 333):
            await response.write(body[pos : pos + 333])
        return response

    async with serve({"/v1/audio/speech": speech}) as url:
        tts = HttpTts(url, api_key=None, model="tts-1", voice=None, timeout_s=5)
        chunks = [c async for c in tts.synthesize("Hello there.")]
    assert b"".join(chunks) == pcm
    assert tts.sample_rate == 24000 and all(len(c) % 2 == 0 for c in chunks)
