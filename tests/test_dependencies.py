"""What the code imports is declared in pyproject.toml, and what pyproject.toml pulls in is pinned in
constraints.txt (scripts/lock writes it): an import that only works because another package happens to bring
its module, or a dependency installed at whatever version was newest that day, fails here instead of on a user's
machine or in a CI run on an untouched tree."""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.kit import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
OWN = {"tap_klaviyo", "fake_klaviyo", "tests", "benchmarks"}


def imported_modules(folder: str) -> set[str]:
    """The top-level modules the Python files under `folder` import, other than the standard library's and
    the repository's own."""
    found = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - OWN


def declared(*extras: str) -> set[str]:
    """The distributions pyproject.toml names: the tap's dependencies, and those of the given extras."""
    requirements = PYPROJECT["project"]["dependencies"] + [
        r for extra in extras for r in PYPROJECT["project"]["optional-dependencies"][extra]
    ]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


@functools.cache
def distributions_by_module() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in distributions_by_module().get(module, [])}


def test_the_import_scan_finds_third_party_imports():
    assert {"msgspec", "requests", "singer_sdk"} <= imported_modules("tap_klaviyo")
    assert {"jsonschema", "yaml", "pytest"} <= imported_modules("tests")


def test_the_tap_imports_only_its_declared_dependencies():
    undeclared = {m for m in imported_modules("tap_klaviyo") if not providers(m) & declared()}
    assert not undeclared, f"tap_klaviyo imports {undeclared}: add them to [project] dependencies"


def test_tests_benchmarks_and_the_fake_import_only_declared_dependencies():
    allowed = declared("test")
    for folder in ("tests", "benchmarks", "fake_klaviyo"):
        undeclared = {m for m in imported_modules(folder) if not providers(m) & allowed}
        assert not undeclared, f"{folder}/ imports {undeclared}: add them to the `test` extra"


def pinned() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def required_closure() -> set[str]:
    """Every distribution that installing the tap with its `test` extra brings, as installed here."""
    todo = [Requirement("tap-klaviyo-singer[test]")]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = requirement.extras
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(name) or []:
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append(needed)
    return {key.split("[")[0] for key in seen} - {"tap-klaviyo-singer"}


def test_every_distribution_installed_for_the_tap_and_its_tests_is_pinned_at_its_installed_version():
    pins = pinned()
    closure = required_closure()
    assert {"singer-sdk", "msgspec", "mypy", "ruff", "pytest"} <= closure
    unpinned = sorted(closure - pins.keys())
    assert not unpinned, f"not in constraints.txt: {unpinned}; run scripts/lock"
    drifted = {name: metadata.version(name) for name in closure if metadata.version(name) != pins[name]}
    assert not drifted, f"installed at other versions than constraints.txt pins: {drifted}; run scripts/test"
    # The build backend and pip are pinned too, so that installing itself is repeatable.
    assert {"pip", "setuptools"} <= pins.keys()


def test_the_pinned_tools_match_their_pins_in_pyproject():
    pins = pinned()
    for text in PYPROJECT["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)]), text
