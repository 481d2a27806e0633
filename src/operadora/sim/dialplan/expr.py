"""``$[...]`` dialplan expressions, as Asterisk 22's expression parser (``ast_expr2``) reads them.

Operators, loosest first: ``a ? b :: c``, ``|``, ``&``, comparisons (``= == != < > <= >=``),
``+ -``, ``* / %``, unary ``- !``, regular expressions (``a : re`` anchored, ``a =~ re``), and
parentheses. Operands are numbers or strings; double quotes group a string and are dropped.
Comparisons are numeric when both sides are numbers, else by string. Truth: not empty and
not ``0``. A malformed expression yields ``""`` (Asterisk logs a syntax error and returns
nothing), never an exception.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# longest first, so that "::" is not read as two ":"
_OPERATORS: tuple[str, ...] = ("::", "=~", "==", "!=", "<=", ">=", "|", "&", "=", "<", ">")
_OPERATORS += ("+", "-", "*", "/", "%", "!", "(", ")", "?", ":")


class ExprError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    operator: bool


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ExprError("unterminated string")
            tokens.append(Token(text[i + 1 : end], False))
            i = end + 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token(op, True))
            i += len(op)
            continue
        j = i
        while (
            j < len(text)
            and not text[j].isspace()
            and text[j] != '"'
            and not any(text.startswith(o, j) for o in _OPERATORS)
        ):
            j += 1
        tokens.append(Token(text[i:j], False))
        i = j
    return tokens


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def truth(value: str) -> bool:
    """Asterisk's ``pbx_checkcondition``: empty or a number equal to 0 is false."""
    text = value.strip()
    if not text:
        return False
    number = _number(text)
    return number != 0 if number is not None else True


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos].operator:
            return self.tokens[self.pos].text
        return None

    def take(self, *ops: str) -> str | None:
        op = self.peek()
        if op is not None and op in ops:
            self.pos += 1
            return op
        return None

    def parse(self) -> str:
        value = self.ternary()
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos].text!r}")
        return value

    def ternary(self) -> str:
        cond = self.or_()
        if self.take("?"):
            yes = self.ternary()
            if not self.take("::"):
                raise ExprError("'?' without '::'")
            no = self.ternary()
            return yes if truth(cond) else no
        return cond

    def or_(self) -> str:
        left = self.and_()
        while self.take("|"):
            right = self.and_()
            left = left if truth(left) else (right if truth(right) else "0")
        return left

    def and_(self) -> str:
        left = self.compare()
        while self.take("&"):
            right = self.compare()
            left = left if truth(left) and truth(right) else "0"
        return left

    def compare(self) -> str:
        left = self.additive()
        while (op := self.take("=", "==", "!=", "<", ">", "<=", ">=")) is not None:
            right = self.additive()
            left = "1" if _compare(op, left, right) else "0"
        return left

    def additive(self) -> str:
        left = self.multiplicative()
        while (op := self.take("+", "-")) is not None:
            right = self.multiplicative()
            a, b = _arith(left, right)
            left = _format(a + b if op == "+" else a - b)
        return left

    def multiplicative(self) -> str:
        left = self.unary()
        while (op := self.take("*", "/", "%")) is not None:
            right = self.unary()
            a, b = _arith(left, right)
            if op == "*":
                left = _format(a * b)
            elif b == 0:
                raise ExprError("division by zero")
            elif op == "/":
                left = _format(float(int(a / b)) if a == int(a) and b == int(b) else a / b)
            else:
                left = _format(float(int(a) % int(b)))
        return left

    def unary(self) -> str:
        if self.take("!"):
            return "0" if truth(self.unary()) else "1"
        if self.take("-"):
            value = _number(self.unary())
            if value is None:
                raise ExprError("'-' needs a number")
            return _format(-value)
        return self.regex()

    def regex(self) -> str:
        left = self.primary()
        while (op := self.take(":", "=~")) is not None:
            pattern = self.primary()
            found = re.match(pattern, left) if op == ":" else re.search(pattern, left)
            if found is None:
                left = "" if re.compile(pattern).groups else "0"
            elif found.groups():
                left = found.group(1) or ""
            else:
                left = str(len(found.group(0)))
        return left

    def primary(self) -> str:
        if self.take("("):
            value = self.ternary()
            if not self.take(")"):
                raise ExprError("missing ')'")
            return value
        if self.pos >= len(self.tokens):
            raise ExprError("missing operand")
        token = self.tokens[self.pos]
        if token.operator:
            raise ExprError(f"unexpected {token.text!r}")
        self.pos += 1
        return token.text


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _compare(op: str, left: str, right: str) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return _COMPARISONS[op](a, b)
    return _COMPARISONS[op](left, right)


def _arith(left: str, right: str) -> tuple[float, float]:
    a, b = _number(left), _number(right)
    if a is None or b is None:
        raise ExprError("arithmetic on a string")
    return a, b


def evaluate_expression(text: str) -> str:
    """The value of the inside of one ``$[...]`` (already substituted)."""
    try:
        tokens = tokenize(text)
        if not tokens:
            return ""
        return _Parser(tokens).parse()
    except (ExprError, re.error):
        return ""
