"""The layout's import rules (README "How it is built"), enforced two ways:

- import-linter's contracts in pyproject.toml, over the static import graph;
- what importing a package really loads, in a fresh interpreter (a third-party package that
  imports Ray behind our back shows up here, not in the graph);
- Ray's private APIs appear in service/_raycompat.py alone.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

SERVICE = REPO / "service"
HEAVY = ("ray", "fastapi", "starlette", "uvicorn", "onnxruntime", "torch", "timm", "onnx")
CORE_MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for p in (SERVICE / "core").rglob("*.py")
    if p.name != "__init__.py"
)


def loaded_by(module: str) -> set[str]:
    """Top-level packages of HEAVY that importing ``module`` loads, in a fresh interpreter."""
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-logo", "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_load_nothing_heavy(module: str) -> None:
    assert loaded_by(module) == set()


def test_the_client_loads_neither_ray_nor_the_server() -> None:
    assert loaded_by("service.client") == set()


def test_the_serving_path_loads_no_model_tooling() -> None:
    assert loaded_by("service.app") & {"torch", "timm", "onnx"} == set()


def test_importing_the_packages_loads_none_of_their_modules() -> None:
    """``service.inference`` and ``service.api`` are namespaces: the Ray-free half of each
    (session, predictor, schemas) must not drag in the deployment half."""
    assert loaded_by("service.inference.predictor") & {"ray", "fastapi", "starlette"} == set()
    assert loaded_by("service.api.schemas") & {"ray", "fastapi", "starlette"} == set()


def private_ray_uses(path: Path) -> list[str]:
    """Imports of Ray's private modules, and private keyword arguments or attributes, in code
    (comments and docstrings do not count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ray" and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
            found.append(f"{path.name}:{node.value.lineno} passes {node.arg}=")
        if isinstance(node, ast.Attribute) and node.attr in ("_by_reference", "_private"):
            found.append(f"{path.name}:{node.lineno} reads .{node.attr}")
    return found


def test_ray_private_apis_live_in_the_compatibility_module_only() -> None:
    compat = SERVICE / "_raycompat.py"
    offenders = [
        use
        for path in sorted(SERVICE.rglob("*.py"))
        if path != compat
        for use in private_ray_uses(path)
    ]
    assert offenders == []
    assert private_ray_uses(compat), "the check finds the uses it is meant to find"
