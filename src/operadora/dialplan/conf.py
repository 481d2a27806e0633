"""Tiny writers for Asterisk's configuration syntax (pure functions, no I/O).

Options are written ``key=value`` and dialplan lines ``exten => ...``/`` same => ...``, the
forms asterisklint accepts without whitespace warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Option = tuple[str, str]


def comment(text: str) -> str:
    return "\n".join(f"; {line}".rstrip() for line in text.splitlines())


def section(name: str, options: Iterable[Option], note: str | None = None) -> str:
    lines = [comment(note)] if note else []
    lines.append(f"[{name}]")
    for key, value in options:
        if key.startswith(";"):
            lines.append(f"; {value}")
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def extension(exten: str, steps: Sequence[str], note: str | None = None) -> str:
    """One extension: the first step at priority 1, the rest as ``same => n,...``."""
    lines = [comment(note)] if note else []
    lines.append(f"exten => {exten},1,{steps[0]}")
    lines.extend(f" same => n,{step}" for step in steps[1:])
    return "\n".join(lines) + "\n"


def context(name: str, body: Iterable[str], note: str | None = None) -> str:
    head = [comment(note)] if note else []
    return "\n".join([*head, f"[{name}]", *body])


def document(header: str, parts: Iterable[str]) -> str:
    return comment(header) + "\n\n" + "\n".join(p.rstrip("\n") + "\n" for p in parts)


def hidden(setting: str) -> Option:
    """A secret left out: a commented line, so Asterisk never loads a placeholder password."""
    return (";", f"{setting} hidden: rerun with --show-secrets to write it")
