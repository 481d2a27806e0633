"""Cutting a reply into clauses so speech synthesis can start on the first one."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?;:¡¿…]+[\"')\]]*\s|\n+")
_SOFT = re.compile(r",\s")


class ClauseSplitter:
    """Feed text as it streams in; complete clauses come out.

    A clause ends at sentence punctuation followed by white space, or at a comma once the clause
    is long enough to be worth its own synthesis call.
    """

    def __init__(self, min_soft_chars: int = 24) -> None:
        self._buffer = ""
        self._min_soft = min_soft_chars

    def push(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if clause:
                out.append(clause)

    def flush(self) -> list[str]:
        clause, self._buffer = self._buffer.strip(), ""
        return [clause] if clause else []

    def _cut(self) -> int | None:
        hard = _END.search(self._buffer)
        if hard is not None:
            return hard.end()
        for soft in _SOFT.finditer(self._buffer):
            if soft.start() >= self._min_soft:
                return soft.end()
        return None


def split_clauses(text: str) -> list[str]:
    splitter = ClauseSplitter()
    return splitter.push(text + " ") + splitter.flush()
