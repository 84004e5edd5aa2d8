"""The layers of docs/architecture.md, checked: what each package may import,
no import circle, no module past 500 lines. Read from the source (every
import statement, lazy ones inside functions included), not from what
happens to be loaded."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
MAX_MODULE_LINES = 500

# Everything outside these packages is core (models, db, errors, i18n, logs,
# extensions, …), except the factory itself (`app/__init__.py`), which wires
# everything together and may import anything.
LAYERS = {
    "app.web": "web",
    "app.blueprints": "web",
    "app.cli": "cli",
    # genai is a part of the service layer with stricter rules of its own.
    "app.services": "services",
}
FORBIDDEN = {
    "core": {"web", "cli", "services", "genai", "factory"},
    "services": {"web", "cli", "factory"},
    "cli": {"web"},
    "web": {"cli"},
}
# Providers see only the contracts: no database, no models, no Flask globals.
GENAI_FORBIDDEN_MODULES = {"app.models", "app.db", "app.extensions"}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


def layer_of(module: str) -> str:
    if module == "app":
        return "factory"
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "core"


def imports_of(path: Path) -> set[str]:
    """The app modules a file imports (`from app.x import y` counts as
    app.x.y when y is a module, else app.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in ALL_MODULES else node.module)
    return {name for name in found if name == "app" or name.startswith("app.")}


ALL_MODULES = {module_name(path) for path in APP.rglob("*.py")}
GRAPH = {module_name(path): imports_of(path) for path in APP.rglob("*.py")}


@pytest.mark.parametrize("path", sorted(APP.rglob("*.py")), ids=lambda p: str(p.relative_to(APP)))
def test_no_module_is_longer_than_500_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by idea"


def test_no_layer_imports_a_layer_above_it():
    wrong = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) in FORBIDDEN.get(layer_of(module), set())
    ]
    assert wrong == []


def test_providers_see_no_database():
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith("app.services.genai")
        for target in targets
        if target in GENAI_FORBIDDEN_MODULES
    ]
    assert wrong == []


# What only a request has: a service that reads one can't run in a worker.
REQUEST_ONLY = {"request", "session", "g", "make_response", "jsonify", "abort", "redirect"}


def test_services_read_no_request_and_build_no_response():
    wrong = []
    for path in (APP / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in ("flask", "flask_login"):
                names = {alias.name for alias in node.names}
                wrong += [f"{path.relative_to(APP)}: {name}" for name in names & REQUEST_ONLY]
                if "current_user" in names:
                    wrong.append(f"{path.relative_to(APP)}: current_user")
    assert wrong == []


def test_no_import_circle_between_modules():
    """Tarjan's strongly connected components over the module graph: every
    component must be one module (the factory excepted: it is the root and
    imports lazily inside create_app)."""
    graph = {m: {t for t in ts if t in GRAPH and t != "app"} for m, ts in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_no_circle_between_layers():
    edges = {
        (layer_of(module), layer_of(target))
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(module) != layer_of(target)
        and "factory" not in (layer_of(module), layer_of(target))
    }
    assert {(b, a) for a, b in edges} & edges == set()
