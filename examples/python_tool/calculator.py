#!/usr/bin/env python3
"""A tool served by a program of your own, as `k2forge rl` runs it (rl.tools = tools.json).

The protocol: one JSON call per line on stdin, {"id": ..., "name": ..., "arguments": {...}},
and one JSON answer per line on stdout, {"content": "..."} or {"error": "..."}. k2forge starts
this program in a sandbox at an episode's first call (its working directory is the episode's own,
fresh one) and stops it, with anything it started, when the episode ends.

This one is the calculator the tiny thinking model learnt to call during SFT, in Python: exact
integer arithmetic over + - * / and parentheses (division only when exact), as k2forge's own.
"""
import ast
import json
import sys

LIMIT = 10 ** 18


def value(node):
    if isinstance(node, ast.Expression):
        return value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = value(node.left), value(node.right)
        if isinstance(node.op, ast.Add):
            r = a + b
        elif isinstance(node.op, ast.Sub):
            r = a - b
        elif isinstance(node.op, ast.Mult):
            r = a * b
        else:
            if b == 0:
                raise ValueError("division by zero")
            if a % b != 0:
                raise ValueError("inexact division %d / %d" % (a, b))
            r = a // b
        if abs(r) > LIMIT:
            raise ValueError("result out of range")
        return r
    raise ValueError("not integer arithmetic")


def answer(call):
    expression = call.get("arguments", {}).get("expression")
    if not isinstance(expression, str) or len(expression) > 256:
        return {"error": 'calculator needs {"expression": "..."} (at most 256 characters)'}
    try:
        return {"content": str(value(ast.parse(expression, mode="eval")))}
    except (SyntaxError, ValueError, RecursionError) as e:
        return {"error": str(e) if isinstance(e, ValueError) else "cannot parse " + json.dumps(expression)}


for line in sys.stdin:
    print(json.dumps(answer(json.loads(line))), flush=True)
