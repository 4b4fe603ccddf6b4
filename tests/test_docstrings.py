"""Every public name says what it does: each function and class in a module's `__all__` (convolab.cli aside: its
verbs say it in their help), and each public method and property those classes define, has a docstring."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import convolab


def modules() -> list:
    """convolab and every module below it, but convolab.cli (not imported) and __main__ modules."""
    found, pending = [], [convolab]
    while pending:
        module = pending.pop()
        found.append(module)
        for info in pkgutil.iter_modules(getattr(module, "__path__", []), module.__name__ + "."):
            if info.name != "convolab.cli" and not info.name.endswith("__main__"):
                pending.append(importlib.import_module(info.name))
    return sorted(found, key=lambda m: m.__name__)


def own_docstring(obj: object) -> str:
    """`obj`'s docstring, "" where it has none: a class's own (not inherited), and not the signature that
    dataclasses and NamedTuple write in place of a missing one ("Cost(macs: 'int', ...)")."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if inspect.isclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        return ""
    return (doc or "").strip()


def public_members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties `cls` itself defines, as functions (a property by its getter)."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            value = value.fget
        elif isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            members.append((name, value))
    return members


def test_every_public_function_class_and_method_has_a_docstring():
    missing, seen = [], set()
    for module in modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if typing.get_origin(obj) is not None:  # a type alias (NormLayer = Callable[...]), a class on Python 3.10
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            where = f"{obj.__module__}.{obj.__qualname__}"
            if not own_docstring(obj):
                missing.append(where)
            if inspect.isclass(obj):
                missing += [f"{where}.{member}" for member, fn in public_members(obj) if not own_docstring(fn)]
    assert len(seen) > 200  # (the walk found the package's modules)
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(sorted(missing))
