"""The torch boundary, read from the source: what each module imports when it loads.

- Nothing outside streamae/train imports torch, onnx, onnxscript or streamae.train at import
  time (an import inside a function runs only when that function does: a trainer, say).
- No library module imports the command layer, streamae.cli, at all: it alone knows argparse.
test_runtime_is_torch_free.py checks the same end to end, in a fresh interpreter.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "streamae"
TRAINING_ONLY = ("torch", "onnx", "onnxscript", "streamae.train")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, at_load_only: bool, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of each import in `path`; with `at_load_only`, those outside
    function bodies (module level, classes, if/try blocks)."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if at_load_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                found.extend((child.lineno, f"{base}.{alias.name}" if not child.module else base)
                             for alias in child.names)
            visit(child)

    visit(tree)
    return found


def within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py")
                 if not within(module_name(p), ("streamae.train", "streamae.cli", "streamae.__main__")))
COMMANDS = sorted((PACKAGE / "cli").rglob("*.py")) + [PACKAGE / "__main__.py"]


@pytest.mark.parametrize("path", LIBRARY + COMMANDS, ids=lambda p: module_name(p))
def test_nothing_outside_train_loads_torch_or_the_trainers(path):
    leaks = [
        f"line {line}: {name}"
        for line, name in imported(path, at_load_only=True)
        if within(name, TRAINING_ONLY)
    ]
    assert not leaks, f"{module_name(path)} imports training code when it loads: {leaks}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: module_name(p))
def test_no_library_module_imports_the_command_layer(path):
    uses = [
        f"line {line}: {name}"
        for line, name in imported(path, at_load_only=False)
        if within(name, ("streamae.cli",))
    ]
    assert not uses, f"{module_name(path)} imports the command layer: {uses}"


def test_the_reader_sees_imports_of_every_kind(tmp_path):
    """The checks above only mean something if `imported` finds what Python would import."""
    pkg = tmp_path / "streamae" / "sub"
    pkg.mkdir(parents=True)
    module = pkg / "m.py"
    module.write_text("import torch.nn\nfrom .. import train\nfrom ..train.config import X\n"
                      "try:\n    import onnx\nexcept ImportError:\n    pass\n"
                      "def f():\n    from ..cli import main\n")
    at_load = [name for _, name in imported(module, at_load_only=True, root=tmp_path)]
    everything = [name for _, name in imported(module, at_load_only=False, root=tmp_path)]
    assert at_load == ["torch.nn", "streamae.train", "streamae.train.config", "onnx"]
    assert everything == at_load + ["streamae.cli"]


@pytest.mark.parametrize("path", LIBRARY + COMMANDS, ids=lambda p: module_name(p))
def test_nothing_loads_ray_unless_asked(path):
    """Ray (the cluster extra) is imported only inside the functions `--ray` runs."""
    leaks = [
        f"line {line}: {name}"
        for line, name in imported(path, at_load_only=True)
        if within(name, ("ray", "streamae.cluster"))
    ]
    assert not leaks, f"{module_name(path)} imports ray or streamae.cluster when it loads: {leaks}"
