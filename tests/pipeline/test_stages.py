"""Every DVC stage lists the project code it runs: a change to any module it imports reruns it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pixelgan.params import REPO

PIPELINES = [REPO / "dvc.yaml", REPO / "paper" / "dvc.yaml"]
PACKAGES = ("pixelgan", "pipeline")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (a package's __init__.py), or None if not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = REPO.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_files(module: str) -> set[Path]:
    """The files of ``module`` and its packages, and every project file they import, at the top
    or inside a function, transitively (a package's __init__.py included, as importing a
    submodule runs it)."""
    seen: set[Path] = set()
    parts = module.split(".")
    pending = [path for depth in range(1, len(parts) + 1) if (path := module_file(".".join(parts[:depth])))]
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.append(node.module)
                names += [f"{node.module}.{alias.name}" for alias in node.names]  # submodules imported by name
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # every package on the way runs its __init__
                found = module_file(".".join(parts[:depth]))
                if found is not None and found.is_file():
                    pending.append(found)
    return seen


def stages() -> list[tuple[Path, str, dict]]:
    found = []
    for pipeline in PIPELINES:
        for name, stage in yaml.safe_load(pipeline.read_text())["stages"].items():
            found.append((pipeline, name, stage))
    return found


@pytest.mark.parametrize("pipeline,name,stage", stages(), ids=lambda value: value if isinstance(value, str) else "")
def test_each_stage_depends_on_every_project_file_it_imports(pipeline: Path, name: str, stage: dict) -> None:
    command = stage["cmd"].split()
    module = command[command.index("-m") + 1]
    listed = [(pipeline.parent / dep).resolve() for dep in stage.get("deps", []) if "${" not in dep.split("/")[0]]
    missing = sorted(
        str(path.relative_to(REPO))
        for path in imported_files(module)
        if not any(path == dep or dep in path.parents for dep in listed)
    )
    assert not missing, f"{pipeline.relative_to(REPO)}: stage {name} runs {missing} but does not list them in deps"
