"""A tiny exact evaluator for arithmetic expressions (the reference solvers use it, never ``eval``).

Supports integers, named variables, ``+ - * /``, unary minus and parentheses; ``/`` is exact
(``fractions.Fraction``).
"""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


def evaluate(expr: str, env: dict[str, int | Fraction] | None = None) -> Fraction:
    """The exact value of ``expr``; ``ValueError`` names anything unsupported."""
    env = env or {}
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot parse expression {expr!r}: {err.msg}") from None

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise ValueError(f"unknown variable {node.id!r} in {expr!r}")
            return Fraction(env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ValueError(f"unsupported syntax {type(node).__name__} in {expr!r}")

    return walk(tree)


def as_int(value: Fraction) -> int:
    """``value`` as an int; ``ValueError`` if it is not whole."""
    if value.denominator != 1:
        raise ValueError(f"{value} is not a whole number")
    return int(value)
