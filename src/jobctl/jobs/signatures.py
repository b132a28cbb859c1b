"""Arguments checked against a job's signature, on every way in (enqueue, `--from`, emit,
recurring entries) and once more in the worker before the call (the code may have changed since).

A built-in job is declared without importing its module (catalogue.declare): its signature is
read from the module's source, so that `jobctl enqueue` does not pay a second of SQLAlchemy
imports to check two arguments.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from ..errors import ArgumentMismatch as ArgumentMismatch  # re-exported: config/queues.py imports it from here
from ..errors import PermanentError
from . import catalogue
from .catalogue import JobSpec


def check(spec: JobSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise ArgumentMismatch naming the job, the missing or extra parameter and the signature."""
    signature = signature_of(spec)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ArgumentMismatch(
            f"job {spec.name!r}: {_problem(signature, args, exc)}; signature: {spec.name}{signature}"
        ) from None


def positional_range(signature: inspect.Signature) -> tuple[int, float]:
    """(fewest, most) positional arguments a call without keyword arguments may pass: such a
    call fits when it passes that many, without binding it (Signature.bind costs microseconds on
    every enqueue). An empty range (1, 0) when none fits: a keyword-only parameter is required."""
    fewest, most = 0, 0.0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            fewest += parameter.default is parameter.empty  # Python allows no required one after a default
        elif parameter.kind is parameter.VAR_POSITIONAL:
            most = math.inf
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return 1, 0
    return fewest, most


def bound_call(spec: JobSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call as the job receives it, however it is spelled: parameter name -> value, each
    argument bound to its parameter (`u 5` and `u -k x=5` are both {"x": 5}), `*args` as a list
    and `**kwargs` as an object under their own names. An argument equal to its parameter's
    default is left out, as an argument not given: `add(1)` and `add(1, 0)` are one call, and a
    parameter added later with a default leaves earlier calls unchanged. Values compare as JSON
    numbers do, by value (5 and 5.0 are one value; true is not 1). Raises ArgumentMismatch."""
    check(spec, args, kwargs)
    bound = signature_of(spec).bind(*args, **kwargs)
    call = {}
    for name, parameter in bound.signature.parameters.items():
        if name not in bound.arguments:
            continue
        value = _canonical(bound.arguments[name])
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            if value:  # empty: nothing was passed to it
                call[name] = value
        elif parameter.default is parameter.empty or _as_json(value) != _as_json(_canonical_default(parameter.default)):
            call[name] = value
    return call


def _as_json(value: Any) -> str:
    """For comparing values as JSON does: true and 1 differ (in Python True == 1)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _canonical(value: Any) -> Any:
    """`value` with its integral floats as ints (5.0 -> 5) and tuples as lists, for comparing
    calls as JSON values."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return value


_NO_VALUE = object()  # a default that is not a literal: no argument is taken as equal to it (repr differs)


def _canonical_default(default: Any) -> Any:
    """A parameter's default, canonical; a default read from a module's source (_Source) is its
    literal value, or _NO_VALUE when the source is an expression."""
    if isinstance(default, _Source):
        try:
            default = ast.literal_eval(default.text)
        except (ValueError, SyntaxError):
            return _NO_VALUE
    return _canonical(default)


def check_stored(spec: JobSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """In the worker, before the call: stored arguments that no longer fit will never fit, so
    the job is dead at once (PermanentError), not retried."""
    try:
        check(spec, args, kwargs)
    except ArgumentMismatch as exc:
        raise PermanentError(f"{exc} (the job's signature changed after it was enqueued?)") from None


def _problem(signature: inspect.Signature, args: Sequence[Any], error: TypeError) -> str:
    if str(error) != "too many positional arguments":
        return str(error)  # names the missing, unexpected or doubled parameter
    takes = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in signature.parameters.values())
    # repr for what JSON cannot show (a set from Python code): the message must not fail itself
    extra = ", ".join(json.dumps(value, default=repr) for value in args[takes:])
    return f"takes {takes} positional argument{'s' if takes != 1 else ''} but {len(args)} were given (extra: {extra})"


def described(spec: JobSpec) -> str:
    """The job's name and signature, as `jobctl jobs` shows them: "resize(path: str, width: int = 800)"."""
    return f"{spec.name}{signature_of(spec)}"


def signature_of(spec: JobSpec) -> inspect.Signature:
    if spec.func is not None:
        return _signature(spec.func)
    return _declared_signature(spec.name, spec.module)


@cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    try:  # annotations as types, not strings, under `from __future__ import annotations`
        return inspect.signature(func, eval_str=True)
    except Exception:  # noqa: BLE001 - an annotation that names what is not importable
        return inspect.signature(func)


class _Source:
    """A default or an annotation as written in the source, shown as such in signatures."""

    def __init__(self, node: ast.AST):
        self.text = ast.unparse(node)

    def __repr__(self) -> str:
        return self.text


@cache
def _declared_signature(name: str, module: str) -> inspect.Signature:
    """The signature of the function a module registers as `name`, read from its source; the
    module is imported only when its source cannot be read or does not show it plainly."""
    function = _find_job_function(name, module)
    if function is None:
        return _signature(catalogue.resolve(name).func)
    return _from_ast(function.args, function.returns)


def _find_job_function(name: str, module: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = importlib.util.find_spec(module)
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return None
    with open(found.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Name)
                    and decorator.func.id == "job"
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                    and decorator.args[0].value == name
                ):
                    return node
    return None


def _from_ast(arguments: ast.arguments, returns: ast.expr | None) -> inspect.Signature:
    P = inspect.Parameter
    parameters = []

    def add(arg: ast.arg, kind: Any, default: ast.expr | None = None) -> None:
        parameters.append(
            P(
                arg.arg,
                kind,
                default=P.empty if default is None else _Source(default),
                annotation=P.empty if arg.annotation is None else _Source(arg.annotation),
            )
        )

    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    for index, arg in enumerate(positional):
        add(arg, P.POSITIONAL_ONLY if index < len(arguments.posonlyargs) else P.POSITIONAL_OR_KEYWORD, defaults[index])
    if arguments.vararg:
        add(arguments.vararg, P.VAR_POSITIONAL)
    for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        add(arg, P.KEYWORD_ONLY, default)
    if arguments.kwarg:
        add(arguments.kwarg, P.VAR_KEYWORD)
    return inspect.Signature(
        parameters, return_annotation=inspect.Signature.empty if returns is None else _Source(returns)
    )
