"""The YAML agent script: greeting, intents with example phrases, answers and actions."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from operadora.voice.errors import ProviderError

ActionName = Literal["transfer", "attended_transfer", "queue", "callback", "hangup"]


class ScriptAction(BaseModel):
    action: ActionName
    target: str = ""
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _target_needed(self) -> ScriptAction:
        if self.action in ("transfer", "attended_transfer", "queue") and not self.target:
            raise ValueError(f"action {self.action} needs a target")
        return self


class Intent(BaseModel):
    name: str
    examples: list[str] = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    answer: str
    action: ScriptAction | None = None


class AgentScript(BaseModel):
    name: str
    language: Literal["en", "es"] = "en"
    greeting: str
    fallback: str
    fallback_limit: int = Field(2, ge=1)  # after this many misses in a row, the fallback action
    fallback_action: ScriptAction | None = None
    fallback_action_answer: str = ""
    threshold: float | None = Field(None, ge=0, le=1)
    intents: list[Intent] = Field(min_length=1)
    dtmf: dict[str, str] = Field(default_factory=dict)  # digit -> intent name
    transfer_phrase: str = ""  # said by the LLM agent when a tool call comes without words

    @model_validator(mode="after")
    def _names(self) -> AgentScript:
        names = [i.name for i in self.intents]
        if len(set(names)) != len(names):
            raise ValueError("intent names must be unique")
        for digit, intent in self.dtmf.items():
            if intent not in names:
                raise ValueError(f"dtmf {digit!r} points to unknown intent {intent!r}")
        return self

    def intent(self, name: str) -> Intent:
        return next(i for i in self.intents if i.name == name)


def shipped_script_path(language: str) -> Path:
    return Path(str(resources.files("operadora.voice.scripts") / f"callcenter_{language}.yaml"))


def load_script(path: Path | None, language: str = "en") -> AgentScript:
    path = path or shipped_script_path(language)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return AgentScript.model_validate(data)
    except FileNotFoundError:
        raise ProviderError("script", f"no agent script at {path}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ProviderError("script", f"invalid agent script {path}: {exc}") from None
