"""A safe parser for user expressions such as ``-0.5*(0.1 + 19.9*t)`` or ``sqrt(2)*exp(t)``.

The grammar is small and closed; nothing the user types ever reaches ``eval``:

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-') unary | power
    power   := atom (('^' | '**') unary)?          # right-associative, binds tighter than unary
    atom    := NUMBER | NAME | NAME '(' expr ')' | '(' expr ')'

Names are the variables the caller allows (``t``; ``x1``..``xd`` for drifts), the constants
``pi`` and ``e``, and the functions exp, log, sqrt, sin, cos, tan, tanh, abs. As in most maths
texts, ``-t^2`` is ``-(t^2)``. The parsed tree evaluates on numpy arrays or torch tensors alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.core.params import did_you_mean
from workbench.errors import ExpressionError

__all__ = ["Expression", "parse_expression", "FUNCTIONS", "CONSTANTS"]

FUNCTIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    # name: (numpy version, torch version)
    "exp": (np.exp, torch.exp),
    "log": (np.log, torch.log),
    "sqrt": (np.sqrt, torch.sqrt),
    "sin": (np.sin, torch.sin),
    "cos": (np.cos, torch.cos),
    "tan": (np.tan, torch.tan),
    "tanh": (np.tanh, torch.tanh),
    "abs": (np.abs, torch.abs),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
_MAX_LENGTH = 2000
_MAX_DEPTH = 100

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|[-+*/^()]))"
)


@dataclass(frozen=True)
class _Num:
    value: float


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Call:
    func: str
    arg: Any


@dataclass(frozen=True)
class _Unary:
    op: str
    arg: Any


@dataclass(frozen=True)
class _Binary:
    op: str
    left: Any
    right: Any


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            col = pos + (len(text[pos:]) - len(text[pos:].lstrip())) + 1
            raise ExpressionError(f"unexpected character {text[col - 1]!r} at column {col}")
        kind = match.lastgroup or ""
        start = match.start(kind) + 1
        tokens.append((kind, match.group(kind), start))
        pos = match.end()
    tokens.append(("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, variables: frozenset[str]) -> None:
        self.text = text
        self.variables = variables
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        kind, value, col = self.take()
        if value != op or kind != "op":
            found = "the end" if kind == "end" else repr(value)
            raise ExpressionError(f"expected {op!r} at column {col}, found {found}")

    def parse(self) -> Any:
        node = self.expr()
        kind, value, col = self.peek()
        if kind != "end":
            raise ExpressionError(f"unexpected {value!r} at column {col}")
        return node

    def expr(self) -> Any:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {_MAX_DEPTH} levels")
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            node = _Binary(op, node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Any:
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            node = _Binary(op, node, self.unary())
        return node

    def unary(self) -> Any:
        kind, value, _ = self.peek()
        if kind == "op" and value in ("+", "-"):
            self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {_MAX_DEPTH} levels")
            node = _Unary(value, self.unary())
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if self.peek()[0] == "op" and self.peek()[1] in ("^", "**"):
            self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {_MAX_DEPTH} levels")
            node = _Binary("^", base, self.unary())
            self.depth -= 1
            return node
        return base

    def atom(self) -> Any:
        kind, value, col = self.take()
        if kind == "num":
            return _Num(float(value))
        if kind == "name":
            if value in FUNCTIONS:
                if self.peek()[1] != "(":
                    raise ExpressionError(f"function {value!r} at column {col} needs '(...)'")
                self.take()
                arg = self.expr()
                self.expect(")")
                return _Call(value, arg)
            if self.peek()[1] == "(" and self.peek()[0] == "op":
                raise ExpressionError(
                    f"unknown function {value!r} at column {col}"
                    f"{did_you_mean(value, FUNCTIONS)}; allowed: {', '.join(FUNCTIONS)}"
                )
            if value in self.variables:
                return _Var(value)
            if value in CONSTANTS:
                return _Num(CONSTANTS[value])
            allowed = sorted(self.variables) + list(CONSTANTS)
            raise ExpressionError(
                f"unknown name {value!r} at column {col}"
                f"{did_you_mean(value, allowed + list(FUNCTIONS))}; allowed names: "
                f"{', '.join(allowed)} and the functions {', '.join(FUNCTIONS)}"
            )
        if kind == "op" and value == "(":
            node = self.expr()
            self.expect(")")
            return node
        found = "the end of the expression" if kind == "end" else repr(value)
        raise ExpressionError(f"expected a number, name or '(' at column {col}, found {found}")


class Expression:
    """A parsed expression; call it with variable values (floats, arrays or tensors)."""

    def __init__(self, text: str, variables: Iterable[str] = ("t",)) -> None:
        if not isinstance(text, str):
            raise ExpressionError(f"an expression must be text, got {text!r}")
        if len(text) > _MAX_LENGTH:
            raise ExpressionError(f"expression longer than {_MAX_LENGTH} characters")
        if not text.strip():
            raise ExpressionError("the expression is empty")
        self.text = text
        self.variables = frozenset(variables)
        self._tree = _Parser(text, self.variables).parse()
        self.used = frozenset(self._names(self._tree))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def _names(self, node: Any) -> Iterable[str]:
        if isinstance(node, _Var):
            yield node.name
        elif isinstance(node, (_Call, _Unary)):
            yield from self._names(node.arg)
        elif isinstance(node, _Binary):
            yield from self._names(node.left)
            yield from self._names(node.right)

    def __call__(self, **values: Any) -> Any:
        """Evaluate; the result has the broadcast shape of the variables, even if it is constant.

        Torch tensors in give a tensor out (same dtype and device), anything else numpy.
        """
        missing = self.used - values.keys()
        if missing:
            raise ExpressionError(f"no value given for {', '.join(sorted(missing))}")
        use_torch = any(isinstance(v, torch.Tensor) for v in values.values())
        env: dict[str, Any]  # tensors or float64 arrays, as the inputs are
        if use_torch:
            ref = next(v for v in values.values() if isinstance(v, torch.Tensor))
            env = {
                k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=ref.dtype)
                for k, v in values.items()
            }
        else:
            env = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        if use_torch:
            ref = next(v for v in env.values())

            def const(value: float) -> Any:
                return torch.tensor(value, dtype=ref.dtype, device=ref.device)

        else:

            def const(value: float) -> Any:
                return np.float64(value)

        with np.errstate(all="ignore"):
            out = self._eval(self._tree, env, 1 if use_torch else 0, const)
        # A constant expression still answers in the variables' shape, so callers can
        # treat g(t) = "1" exactly like g(t) = "sqrt(t)".
        for v in env.values():
            out = out + v * 0
        return out

    def _eval(self, node: Any, env: Mapping[str, Any], lib: int, const: Callable) -> Any:
        if isinstance(node, _Num):
            return const(node.value)
        if isinstance(node, _Var):
            return env[node.name]
        if isinstance(node, _Unary):
            val = self._eval(node.arg, env, lib, const)
            return -val if node.op == "-" else val
        if isinstance(node, _Call):
            return FUNCTIONS[node.func][lib](self._eval(node.arg, env, lib, const))
        left = self._eval(node.left, env, lib, const)
        right = self._eval(node.right, env, lib, const)
        return _BINARY[node.op](left, right)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "^": lambda a, b: a**b,
}


def parse_expression(text: str, variables: Iterable[str] = ("t",)) -> Expression:
    """Parse ``text``; raises :class:`ExpressionError` with the column of the problem."""
    return Expression(text, variables)
