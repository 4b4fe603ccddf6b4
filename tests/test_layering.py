"""The layering rule of pyproject.toml's import-linter contract holds, and can fail; no module imports
a convolab module inside a function (the way to hide a cycle)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT), "--no-cache", "--config", str(cwd / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


needs_linter = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


@needs_linter
def test_the_packages_import_only_downward():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


@needs_linter
def test_the_contract_fails_on_a_module_that_imports_upward(tmp_path):
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "convolab", copy / "convolab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "convolab" / "layers" / "_upward.py").write_text("from ..training import TrainConfig\n")
    result = lint(copy, pythonpath=copy)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "convolab.layers is not allowed to import convolab.training" in result.stdout
    assert "convolab.layers._upward -> convolab.training" in result.stdout


def imports_inside_functions(path: Path) -> list[str]:
    """`file:line module` of every import of a convolab module made inside a function body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("convolab")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {'.' * node.level}{node.module or ''}")
            elif isinstance(node, ast.Import) and any(a.name.startswith("convolab") for a in node.names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.names[0].name}")
    return found


def test_no_convolab_module_is_imported_inside_a_function():
    # Third-party packages may be imported where they are used (matplotlib, onnx, scipy: optional or
    # slow to import); convolab's own modules only at the top, where the contract sees them.
    found = [hit for path in sorted((ROOT / "convolab").rglob("*.py")) for hit in imports_inside_functions(path)]
    assert found == [], "\n".join(found)


def test_import_convolab_loads_no_heavy_optional_package():
    """torchvision (its models load torch._dynamo: seconds), timm, matplotlib and onnx are imported where they
    are used, so `import convolab` and the CLI's start pay only for torch."""
    heavy = "('torchvision', 'torch._dynamo', 'timm', 'matplotlib', 'onnx')"
    code = f"import sys, convolab, convolab.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_no_test_imports_the_tests_folder_as_a_package():
    """CI runs `pytest` (not `python -m pytest`), so the checkout's root is not on sys.path and `tests` is no
    package: `from tests.x import y` collects only from the root under `python -m`. A test shares helpers the way
    conftest's are shared, by module name (`from conftest import ...`)."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert found == [], "\n".join(found)
