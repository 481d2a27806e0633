"""The dialplan model: contexts, extensions (with patterns), priorities and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from operadora.sim.dialplan.conf import ConfError, parse_sections


@dataclass(frozen=True, slots=True)
class Step:
    priority: int
    app: str
    data: str
    label: str | None = None


@dataclass(slots=True)
class Context:
    name: str
    extensions: dict[str, dict[int, Step]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Dialplan:
    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def match(self, context: str, exten: str, _depth: int = 0) -> tuple[str, str] | None:
        """(context, extension key) that handles ``exten`` in ``context``, includes followed."""
        ctx = self.contexts.get(context)
        if ctx is None or _depth > 8:
            return None
        if exten in ctx.extensions:
            return context, exten
        for key in sorted(ctx.extensions, key=_pattern_rank):
            if key.startswith("_") and pattern_matches(key, exten):
                return context, key
        for inc in ctx.includes:
            found = self.match(inc, exten, _depth + 1)
            if found:
                return found
        return None

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        found = self.match(context, exten)
        if found is None:
            return None
        return self.contexts[found[0]].extensions[found[1]].get(priority)

    def label(self, context: str, exten: str, label: str) -> int | None:
        found = self.match(context, exten)
        if found is None:
            return None
        for step in self.contexts[found[0]].extensions[found[1]].values():
            if step.label == label:
                return step.priority
        return None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        return self.step(context, exten, priority) is not None

    def can_match_more(self, context: str, prefix: str, _depth: int = 0) -> bool:
        """Asterisk's ``ast_matchmore_extension``: could more digits after ``prefix`` still
        reach an extension of ``context`` (includes followed)?"""
        ctx = self.contexts.get(context)
        if ctx is None or _depth > 8:
            return False
        for key in ctx.extensions:
            if key.startswith("_"):
                if pattern_extends(key, prefix):
                    return True
            elif len(key) > len(prefix) and key.startswith(prefix):
                return True
        return any(self.can_match_more(inc, prefix, _depth + 1) for inc in ctx.includes)


def _pattern_rank(key: str) -> tuple[int, str]:
    # more specific first: fewer wildcards, longer patterns
    return (key.count(".") + key.count("!"), key)


@lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "X":
            out.append("[0-9]")
        elif ch == "Z":
            out.append("[1-9]")
        elif ch == "N":
            out.append("[2-9]")
        elif ch == ".":
            out.append(".+")
        elif ch == "!":
            out.append(".*")
        elif ch == "[":
            end = body.index("]", i)
            out.append("[" + body[i + 1 : end] + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def pattern_matches(pattern: str, exten: str) -> bool:
    return bool(_pattern_regex(pattern).match(exten))


def _pattern_elements(pattern: str) -> list[str]:
    """``_NXX.`` -> ``["N", "X", "X", "."]`` (a ``[...]`` class is one element)."""
    body, out, i = pattern[1:], [], 0
    while i < len(body):
        if body[i] == "[":
            end = body.find("]", i)
            end = len(body) - 1 if end < 0 else end
            out.append(body[i : end + 1])
            i = end + 1
            continue
        out.append(body[i])
        i += 1
    return out


def pattern_extends(pattern: str, prefix: str) -> bool:
    """True if ``prefix`` plus at least one more digit may still match ``pattern``."""
    elements = _pattern_elements(pattern)
    for n, char in enumerate(prefix):
        if n >= len(elements):
            return False
        element = elements[n]
        if element in (".", "!"):
            return True
        if not pattern_matches("_" + element, char):
            return False
    rest = elements[len(prefix) :]
    return bool(rest) and rest != ["!"]


_APP = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*$", re.S)


def parse_dialplan(text: str, source: str = "extensions.conf") -> Dialplan:
    plan = Dialplan()
    sections = parse_sections(text, source)
    for sec in sections:
        if sec.name == "general":
            continue
        if sec.name == "globals":
            plan.globals.update(dict(sec.items))
            continue
        ctx = plan.contexts.setdefault(sec.name, Context(sec.name))
        last_exten: str | None = None
        last_prio = 0
        for key, value in sec.items:
            if key == "include":
                ctx.includes.append(value)
                continue
            if key not in ("exten", "same"):
                continue
            if key == "exten":
                exten, _, rest = value.partition(",")
                last_exten = exten.strip()
                last_prio = 0
            else:
                if last_exten is None:
                    raise ConfError(f"{source}: [{sec.name}] 'same =>' before any 'exten =>'")
                rest = value
            prio_text, _, app_text = rest.partition(",")
            prio_text = prio_text.strip()
            label: str | None = None
            m = re.match(r"^([^()]+)\(([^)]*)\)$", prio_text)
            if m:
                prio_text, label = m.group(1), m.group(2)
            if prio_text == "hint":
                continue
            if prio_text == "n":
                prio = last_prio + 1
            elif prio_text.startswith("n+"):
                prio = last_prio + int(prio_text[2:])
            else:
                try:
                    prio = int(prio_text)
                except ValueError:
                    raise ConfError(
                        f"{source}: [{sec.name}] bad priority {prio_text!r} in {value!r}"
                    ) from None
            app_match = _APP.match(app_text)
            if not app_match:
                raise ConfError(f"{source}: [{sec.name}] bad application in {value!r}")
            step = Step(prio, app_match.group(1), (app_match.group(2) or "").strip(), label)
            assert last_exten is not None
            ctx.extensions.setdefault(last_exten, {})[prio] = step
            last_prio = prio
    return plan
