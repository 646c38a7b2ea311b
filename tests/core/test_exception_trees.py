"""Each package documents its exception tree (one root under ``KinitroError``); the tree in
the docstring must be the tree in the code: every documented class exists with the
documented parent, every exception class the package defines is documented, and every
public one hangs under the package's root."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

from kinitro.core.errors import KinitroError

# package → the module whose docstring holds the tree
DOCUMENTED = {
    "kinitro.evaluator": "kinitro.evaluator",
    "kinitro.jobqueue": "kinitro.jobqueue",
    "kinitro.validator": "kinitro.validator.errors",
}

_ROOT = re.compile(r"^\s*(\w+) \((\w+)\)\s*$")
_NODE = re.compile(r"^[│ ]*[├└]── (?P<name>\w+)")


def documented_tree(doc: str) -> tuple[str, dict[str, str]]:
    """(root, {class: documented parent}) from the first tree drawn in ``doc``."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        root = _ROOT.match(line)
        if root is None or i + 1 >= len(lines) or not _NODE.match(lines[i + 1]):
            continue
        parents = {root.group(1): root.group(2)}
        stack = [root.group(1)]
        column = len(line) - len(line.lstrip())
        for node in lines[i + 1 :]:
            m = _NODE.match(node)
            if m is None and node.strip() and len(node) - len(node.lstrip(" │")) > column:
                continue  # a description's second line
            if m is None:
                break
            depth = (len(node) - len(node.lstrip(" │")) - column) // 4 + 1
            del stack[depth:]
            parents[m.group("name")] = stack[-1]
            stack.append(m.group("name"))
        return root.group(1), parents
    raise AssertionError("no exception tree drawn in the docstring")


def package_modules(name: str) -> list[ModuleType]:
    package = importlib.import_module(name)
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if ".migrations" in info.name:
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as exc:
            # A script run by another interpreter (e.g. the sandbox's seccomp compiler,
            # run by the distribution's Python): not part of the package's import graph.
            if (exc.name or "").startswith("kinitro"):
                raise
    return modules


def defined_exceptions(name: str) -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in package_modules(name):
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[cls_name] = cls
    return found


@pytest.mark.parametrize("package", sorted(DOCUMENTED))
def test_documented_exception_tree_is_the_real_one(package: str) -> None:
    doc = importlib.import_module(DOCUMENTED[package]).__doc__ or ""
    root_name, parents = documented_tree(doc)
    real = defined_exceptions(package)
    assert root_name in real, f"{package}: root {root_name} is not defined"
    root = real[root_name]
    assert root.__bases__ == (KinitroError,) and parents[root_name] == "KinitroError"

    undocumented = sorted(
        n for n, cls in real.items() if issubclass(cls, root) and n not in parents
    )
    assert not undocumented, f"{package}: add to the documented tree: {undocumented}"
    outside = sorted(n for n, cls in real.items() if not n.startswith("_") and cls is not root
                     and not issubclass(cls, root))  # fmt: skip
    assert not outside, f"{package}: public exceptions outside {root_name}: {outside}"
    for cls_name, parent in parents.items():
        if cls_name == root_name:
            continue
        assert cls_name in real, f"{package}: documented {cls_name} does not exist"
        bases = [b.__name__ for b in real[cls_name].__bases__]
        assert bases == [parent], f"{package}: {cls_name} derives from {bases}, doc says {parent}"


def test_the_tree_parser_reads_nesting() -> None:
    doc = """
    Exceptions::

        RootError (KinitroError)
        ├── A          a
        │              more about a
        │   ├── A1     a1
        │   └── A2     a2
        └── B          b
            └── B1     b1

    More text.
    """
    assert documented_tree(doc) == (
        "RootError",
        {"RootError": "KinitroError", "A": "RootError", "A1": "A", "A2": "A", "B": "RootError",
         "B1": "B"},
    )  # fmt: skip
