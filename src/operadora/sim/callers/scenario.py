"""Personas and their scripted steps, loaded from YAML.

A persona is one simulated caller: who they are on the line (caller ID, the DID they dial,
their language) and what they do, step by step::

    name: opening-hours-en
    language: en
    caller_id: "Alice <+15551000>"
    did: "+15550100"
    expect: {outcome: resolved}
    steps:
      - listen: {}                      # the greeting, until the agent stops speaking
      - say: "What are your opening hours?"
      - listen: {phrase: "open"}        # until the agent has said a phrase
      - dtmf: "1"
      - wait: 1.5
      - say: {text: "I wanted to ask about", hangup_after_ms: 900}   # hangs up mid-sentence
      - hangup: {}

The shipped scenarios live next to this file (``scenarios/*.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

Language = Literal["en", "es"]
Outcome = Literal["resolved", "transferred", "queue", "callback", "abandoned", "failed"]
DTMF_DIGITS = re.compile(r"^[0-9A-D*#]+$")
_CALLER_ID = re.compile(r'^\s*(?:"?(?P<name>[^"<]*?)"?\s*)?<(?P<number>[^>]+)>\s*$')


class ScenarioError(Exception):
    """A persona file is invalid; the message names the file and the step."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SayStep(_Step):
    """Speak ``text``; with ``hangup_after_ms`` the caller hangs up that far into it."""

    text: str = Field(min_length=1)
    hangup_after_ms: int | None = Field(None, gt=0)
    wait_agent_silence: bool = False  # don't start while the agent is talking


class ListenStep(_Step):
    """Wait until the agent has spoken and then stopped (or has said ``phrase``)."""

    phrase: str | None = None
    timeout_s: float = Field(20.0, gt=0)
    silence_ms: int = Field(800, gt=0)  # agent silence that ends its turn


class DtmfStep(_Step):
    digits: str
    gap_ms: int = Field(250, ge=0)
    duration_ms: int = Field(100, gt=0)

    @field_validator("digits")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not DTMF_DIGITS.match(value):
            raise ValueError(f"not DTMF digits: {value!r}")
        return value


class WaitStep(_Step):
    seconds: float = Field(ge=0)


class HangupStep(_Step):
    pass


Step = SayStep | ListenStep | DtmfStep | WaitStep | HangupStep

_SHORTHAND: dict[str, tuple[type[_Step], str | None]] = {
    "say": (SayStep, "text"),
    "listen": (ListenStep, "phrase"),
    "dtmf": (DtmfStep, "digits"),
    "wait": (WaitStep, "seconds"),
    "hangup": (HangupStep, None),
}


def _step_key(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in _SHORTHAND else None
    return None


def _expand(key: str, body: Any) -> dict[str, Any]:
    _, scalar_field = _SHORTHAND[key]
    if body is None or body is True or body == {}:
        return {}
    if isinstance(body, dict):
        return body
    if scalar_field is None:
        raise ValueError(f"{key}: takes no value")
    return {scalar_field: body}


def parse_step(value: Any) -> Step:
    """One YAML list item (``{say: "text"}``, ``{listen: {phrase: x}}``...) as its typed step."""
    key = _step_key(value)
    if key is None:
        raise ValueError(f"a step is one of {', '.join(_SHORTHAND)} with its value, got {value!r}")
    model, _ = _SHORTHAND[key]
    return cast(Step, model.model_validate(_expand(key, value[key])))


class CallerId(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = ""
    number: str

    @classmethod
    def parse(cls, value: str) -> CallerId:
        match = _CALLER_ID.match(value)
        if match:
            return cls(name=(match["name"] or "").strip(), number=match["number"].strip())
        return cls(number=value.strip())

    def __str__(self) -> str:
        return f'"{self.name}" <{self.number}>' if self.name else self.number


class Expectation(BaseModel):
    """What the demo and tests check once the call is over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    target: str | None = None  # the transfer / queue target, where one is expected
    agent_says: list[str] = Field(default_factory=list)  # phrases the caller must hear


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = ""
    language: Language = "en"
    caller_id: CallerId
    did: str = "100"
    voice: str | None = None  # a TTS voice name; default: the engine's voice for the language
    expect: Expectation | None = None
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("caller_id", mode="before")
    @classmethod
    def _caller_id(cls, value: Any) -> Any:
        return CallerId.parse(value) if isinstance(value, str) else value

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("steps must be a list")
        parsed: list[Step] = []
        for index, item in enumerate(value):
            try:
                parsed.append(parse_step(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"step {index + 1} ({where}): {first['msg']}") from None
            except ValueError as exc:
                raise ValueError(f"step {index + 1}: {exc}") from None
        return parsed


def parse_persona(data: Any, source: str = "<data>") -> Persona:
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or 'persona'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ScenarioError(f"{source}: " + "; ".join(lines)) from None


def load_persona(path: Path) -> Persona:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_persona(data, str(path))


def shipped_personas() -> list[Persona]:
    """The personas shipped with Operadora, sorted by name."""
    folder = resources.files("operadora.sim.callers") / "scenarios"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            out.append(parse_persona(yaml.safe_load(entry.read_text("utf-8")), entry.name))
    return out


def load_personas(paths: Iterable[Path]) -> list[Persona]:
    """Personas from files and folders of ``*.yaml``."""
    out: list[Persona] = []
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        out.extend(load_persona(f) for f in files)
    return out
