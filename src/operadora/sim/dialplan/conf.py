"""Asterisk configuration files, parsed without I/O: ``extensions.conf``, ``queues.conf``,
``pjsip.conf`` and ``musiconhold.conf`` (the subset the simulator runs).

Format: ``;`` comments (``\\;`` is a literal semicolon), ``[section]`` headers with optional
``(!)``/``(template)`` suffixes, ``key = value`` and ``key => value`` lines (both kept in order,
repeated keys allowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class ConfError(ValueError):
    """A configuration line could not be understood; the message names the line."""


@dataclass(slots=True)
class Section:
    name: str
    templates: list[str] = field(default_factory=list)
    is_template: bool = False
    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]


_HEADER = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")


def strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def parse_sections(text: str, source: str = "<conf>") -> list[Section]:
    sections: list[Section] = []
    current: Section | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw)
        if not line:
            continue
        header = _HEADER.match(line)
        if header:
            opts = [o.strip() for o in (header.group(2) or "").split(",") if o.strip()]
            current = Section(
                header.group(1).strip(),
                templates=[o for o in opts if o != "!"],
                is_template="!" in opts,
            )
            sections.append(current)
            continue
        if current is None:
            raise ConfError(f"{source}:{lineno}: setting outside any [section]: {raw.strip()}")
        if "=>" in line and ("=" not in line or line.index("=>") <= line.index("=")):
            key, _, value = line.partition("=>")
        elif "=" in line:
            key, _, value = line.partition("=")
        else:
            raise ConfError(f"{source}:{lineno}: expected 'key = value': {raw.strip()}")
        current.items.append((key.strip(), value.strip()))
    return sections


def resolved(sections: list[Section], name: str, seen: frozenset[str] = frozenset()) -> Section:
    """A section with its templates' settings first (later sections of the same name appended)."""
    matches = [s for s in sections if s.name == name]
    out = Section(name)
    for sec in matches:
        for tpl in sec.templates:
            if tpl not in seen:
                out.items.extend(resolved(sections, tpl, seen | {name}).items)
        out.items.extend(sec.items)
    return out
