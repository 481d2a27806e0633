"""An agent backed by any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp
server, OpenAI): tokens stream into speech synthesis, the conversation is kept per call, and
call-control actions arrive as tool calls."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from operadora.voice.agent.script import AgentScript
from operadora.voice.engines import ACTIONS, AgentAction, AgentOutput, AgentText, CallerInfo
from operadora.voice.errors import ProviderError, http_status_retryable

log = logging.getLogger(__name__)

MAX_HISTORY = 40


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_TARGET = {"type": "string", "description": "extension, queue or dial string"}
TOOLS = [
    _tool(
        "transfer", "Blind-transfer the caller to an extension.", {"target": _TARGET}, ["target"]
    ),
    _tool(
        "attended_transfer",
        "Consult a person first, then hand the caller over with a short summary.",
        {"target": _TARGET, "summary": {"type": "string"}},
        ["target"],
    ),
    _tool("queue", "Send the caller to a human queue.", {"target": _TARGET}, ["target"]),
    _tool(
        "callback",
        "Schedule a call back to the caller.",
        {
            "when": {"type": "string", "description": "when the caller wants the call"},
            "number": {"type": "string"},
        },
        ["when"],
    ),
    _tool("hangup", "End the call after saying goodbye.", {}, []),
]


def system_prompt_from_script(script: AgentScript) -> str:
    lines = [
        f"You are the telephone agent of {script.name}. Answer in "
        f"{'Spanish' if script.language == 'es' else 'English'}, in one or two short spoken "
        "sentences, without lists or markdown. Use the tools to transfer, queue, schedule a "
        "callback or hang up; say a short sentence before using one.",
        "What you know and where calls go:",
    ]
    for intent in script.intents:
        where = ""
        if intent.action is not None:
            where = f" -> {intent.action.action} {intent.action.target}".rstrip()
        lines.append(f"- {intent.name}: {intent.answer}{where}")
    return "\n".join(lines)


@dataclass(slots=True)
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Turn:
    text: list[str] = field(default_factory=list)
    calls: dict[int, _ToolCall] = field(default_factory=dict)


class OpenAiChatClient:
    """Streams one chat completion; yields content deltas and returns tool calls at the end."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str,
        temperature: float,
        timeout_s: float,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._temperature = temperature
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_read=timeout_s)

    async def stream(self, messages: list[dict[str, Any]], turn: _Turn) -> AsyncIterator[str]:
        body = {
            "model": self._model,
            "messages": messages,
            "tools": TOOLS,
            "temperature": self._temperature,
            "stream": True,
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(self._url, json=body, headers=self._headers) as response,
            ):
                if response.status != 200:
                    detail = (await response.text())[:300]
                    raise ProviderError(
                        "llm",
                        f"HTTP {response.status}: {detail}",
                        retryable=http_status_retryable(response.status),
                    )
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    text = _apply_chunk(json.loads(data), turn)
                    if text:
                        yield text
        except TimeoutError as exc:
            raise ProviderError("llm", "timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("llm", str(exc), retryable=True) from exc
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ProviderError("llm", f"malformed stream: {exc}") from exc


def _apply_chunk(chunk: dict[str, Any], turn: _Turn) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    delta = choices[0].get("delta") or {}
    for call in delta.get("tool_calls") or []:
        slot = turn.calls.setdefault(int(call.get("index", 0)), _ToolCall())
        slot.id = call.get("id") or slot.id
        function = call.get("function") or {}
        slot.name = function.get("name") or slot.name
        slot.arguments += function.get("arguments") or ""
    content = delta.get("content")
    if content:
        turn.text.append(content)
        return str(content)
    return ""


class LlmConversation:
    def __init__(self, agent: LlmAgent, call_id: str, caller: CallerInfo | None = None) -> None:
        self._agent = agent
        self.call_id = call_id
        self.caller = caller or CallerInfo()
        system = agent.system_prompt
        if about := self.caller.describe():
            system = f"{system}\n\n{about}"
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        self._pending: dict[str, Any] | None = None

    def greeting(self) -> str | None:
        greeting = self._agent.greeting
        if greeting:
            self.messages.append({"role": "assistant", "content": greeting})
        return greeting

    async def reply(self, caller_text: str) -> AsyncIterator[AgentOutput]:
        self.messages.append({"role": "user", "content": caller_text})
        turn = _Turn()
        async for text in self._agent.client.stream(self._trimmed(), turn):
            yield AgentText(text)
        actions: list[AgentAction] = []
        calls: list[dict[str, Any]] = []
        for index in sorted(turn.calls):
            call = turn.calls[index]
            action = _to_action(call)
            calls.append(
                {
                    "id": call.id or f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
            )
            if action is not None:
                actions.append(action)
        if actions and not turn.text and self._agent.transfer_phrase:
            turn.text.append(self._agent.transfer_phrase)
            yield AgentText(self._agent.transfer_phrase)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(turn.text)}
        if calls:
            message["tool_calls"] = calls
        self.messages.append(message)
        for entry in calls:
            self.messages.append({"role": "tool", "tool_call_id": entry["id"], "content": "ok"})
        self._pending = message
        for action in actions:
            yield action

    async def dtmf(self, digit: str) -> AsyncIterator[AgentOutput]:
        async for out in self.reply(f"[the caller pressed {digit} on the keypad]"):
            yield out

    def heard(self, spoken: str, interrupted: bool) -> None:
        """Keep in memory only what the caller heard of the last reply."""
        if self._pending is not None and interrupted:
            self._pending["content"] = spoken + (" [interrupted]" if spoken else "[interrupted]")
        self._pending = None

    def _trimmed(self) -> list[dict[str, Any]]:
        if len(self.messages) <= MAX_HISTORY:
            return self.messages
        tail = self.messages[-(MAX_HISTORY - 1) :]
        while tail and tail[0]["role"] == "tool":
            tail = tail[1:]
        return [self.messages[0], *tail]


def _to_action(call: _ToolCall) -> AgentAction | None:
    if call.name not in ACTIONS:
        log.warning("LLM called unknown tool %r", call.name)
        return None
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        log.warning("LLM tool call %s has malformed arguments", call.name)
        return None
    if not isinstance(args, dict):
        return None
    target = str(args.pop("target", ""))
    return AgentAction(call.name, target, args)


class LlmAgent:
    name = "llm"

    def __init__(
        self,
        client: OpenAiChatClient,
        *,
        system_prompt: str,
        greeting: str | None,
        transfer_phrase: str = "",
    ) -> None:
        self.client = client
        self.system_prompt = system_prompt
        self.greeting = greeting
        self.transfer_phrase = transfer_phrase

    def conversation(self, call_id: str, caller: CallerInfo | None = None) -> LlmConversation:
        return LlmConversation(self, call_id, caller)
