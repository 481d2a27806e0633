"""``${VAR}`` and ``${FUNC(args)}`` substitution in application data, as Asterisk does it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from operadora.sim.dialplan.expr import evaluate_expression

Lookup = Callable[[str], str | None]


def substitute(text: str, lookup: Lookup) -> str:
    """Replace every ``${...}`` and ``$[...]`` (what they contain first); unknown names become
    empty strings, an expression its value (``expr.py``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        start = _next_open(text, i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        opener, closer = text[start + 1], "}" if text[start + 1] == "{" else "]"
        end = _closing(text, start + 2, opener, closer)
        if end < 0:  # unterminated: keep literally
            out.append(text[start:])
            break
        inner = substitute(text[start + 2 : end], lookup)
        out.append(evaluate(inner, lookup) if opener == "{" else evaluate_expression(inner))
        i = end + 1
    return "".join(out)


def _next_open(text: str, start: int) -> int:
    found = [p for p in (text.find("${", start), text.find("$[", start)) if p >= 0]
    return min(found) if found else -1


def _closing(text: str, j: int, opener: str, closer: str) -> int:
    """Where the ``${``/``$[`` opened just before ``j`` closes (nested ones skipped)."""
    depth = 0
    while j < len(text):
        if text.startswith("$" + opener, j):
            depth += 1
            j += 2
            continue
        if text[j] == closer:
            if depth == 0:
                return j
            depth -= 1
        j += 1
    return -1


def evaluate(expr: str, lookup: Lookup) -> str:
    """The value of one ``${expr}``: a variable, a function call, with ``:offset:length``."""
    name, offset, length = _split_substring(expr)
    if name.endswith(")") and "(" in name:
        func, _, args = name[:-1].partition("(")
        value = call_function(func.strip().upper(), args, lookup)
    else:
        value = lookup(name) or ""
    if offset is not None:
        value = value[offset:] if length is None else value[offset : offset + length]
    return value


def _split_substring(expr: str) -> tuple[str, int | None, int | None]:
    if ":" not in expr or expr.endswith(")"):
        return expr, None, None
    name, _, rest = expr.partition(":")
    off_text, _, len_text = rest.partition(":")
    try:
        offset = int(off_text)
        length = int(len_text) if len_text else None
    except ValueError:
        return expr, None, None
    return name, offset, length


def call_function(func: str, args: str, lookup: Lookup) -> str:
    if func == "UUID":
        return str(uuid.uuid4())
    if func == "CALLERID":
        part = args.strip().lower()
        key = {"num": "CALLERID(num)", "number": "CALLERID(num)", "name": "CALLERID(name)"}
        if part == "all":
            name = lookup("CALLERID(name)") or ""
            num = lookup("CALLERID(num)") or ""
            return f'"{name}" <{num}>' if name else f"<{num}>"
        return lookup(key.get(part, "CALLERID(num)")) or ""
    if func == "LEN":
        return str(len(args))
    return lookup(f"{func}({args})") or ""
