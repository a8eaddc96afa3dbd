"""The edges between the apps: the core imports no feature app, projects never imports prizes, no app imports the
demo, and nothing reaches another app through a module name in a string (``__import__``, ``import_module``)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FEATURE_APPS = {"labs", "projects", "prizes"}
# app -> the apps it must not import (the feature apps reach the core, the core reaches them through courses.features)
FORBIDDEN = {
    "courses": FEATURE_APPS | {"demo"},
    "labs": {"demo"},
    "projects": {"prizes", "demo"},
    "prizes": {"demo"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports anywhere, including inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def dynamic_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in {"__import__", "import_module"}:
                names.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return names


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_an_app_imports_none_of_the_apps_it_must_not_know(app):
    offending = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[app])
        for path in (REPO / app).rglob("*.py")
        if imported_packages(path) & FORBIDDEN[app]
    }
    assert offending == {}


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_no_app_reaches_another_through_a_module_name_in_a_string(app):
    assert [found for path in (REPO / app).rglob("*.py") for found in dynamic_imports(path)] == []
