"""Every DVC stage lists exactly what it depends on: the project code it runs (a change to any
module it imports reruns it) and the parameters it reads (a change to any of them reruns it,
and to no other key)."""

from __future__ import annotations

import ast
import importlib
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import pipeline.params as params_module
from pipeline.params import REPO, load_params

PIPELINES = [REPO / "dvc.yaml", REPO / "paper" / "dvc.yaml", REPO / "search" / "dvc.yaml"]
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


class Recorded(dict):
    """Parameters that note the dotted name of every value read from them, however read:
    ``[]``, ``get``, ``items``, ``values``, ``dict(...)`` (for a subclass that defines
    ``__iter__``, CPython copies through keys and ``__getitem__``), and the results of
    ``with_overrides`` (``recording_merges``), which note into the same sets. A value the
    stage wrote over (an override) and then read is noted apart, in ``overridden``."""

    def __init__(self, data: dict[str, Any], reads: set[str], overridden: set[str], prefix: str = "",
                 written: set[str] = frozenset()) -> None:
        super().__init__({key: Recorded(value, reads, overridden, f"{prefix}{key}.", written) if isinstance(value, dict)
                          else value for key, value in data.items()})
        self.reads, self.overridden, self.prefix = reads, overridden, prefix
        self.written = {key for key in written if key.startswith(prefix)}

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if not isinstance(value, Recorded) or not value:  # an empty mapping is a value, as leaves() counts it
            name = f"{self.prefix}{key}"
            (self.overridden if name in self.written else self.reads).add(name)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.add(f"{self.prefix}{key}")
        super().__setitem__(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def __iter__(self) -> Any:  # the keys alone are not a read
        return iter(list(super().keys()))

    def items(self) -> Any:
        return [(key, self[key]) for key in super().keys()]

    def values(self) -> Any:
        return [self[key] for key in super().keys()]

    def plain(self) -> dict[str, Any]:
        return {key: value.plain() if isinstance(value, Recorded) else value for key, value in dict.items(self)}

    def all_written(self) -> set[str]:
        below = [value.all_written() for value in dict.values(self) if isinstance(value, Recorded)]
        return set(self.written).union(*below)


def recording_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``with_overrides`` keep noting reads in every project module that has it: the
    real merge runs on the plain parameters (the merge itself reads everything, which is no
    read of the stage's), and its result notes into the same sets, with the keys it laid over
    marked written. A named run's changes are read where ``run_params`` flattens them."""
    real = params_module.with_overrides

    def merge(params: dict[str, Any], changes: dict[str, Any], source: str = "override") -> dict[str, Any]:
        if not isinstance(params, Recorded):
            return real(params, changes, source)
        plain = {key: value.plain() if isinstance(value, Recorded) else value for key, value in changes.items()}
        return Recorded(real(params.plain(), plain, source), params.reads, params.overridden, params.prefix,
                        params.all_written() | set(changes))

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in PACKAGES and getattr(module, "with_overrides", None) is real:
            monkeypatch.setattr(module, "with_overrides", merge)


def leaves(tree: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in tree.items():
        found |= leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}"}
    return found


def stage_runs() -> list[tuple[Path, str, list[str], list[str]]]:
    """Each stage (each entry of a matrix stage) as its command's arguments and its params list."""
    found = []
    for pipeline, name, stage in stages():
        params = yaml.safe_load((pipeline.parent / "params.yaml").read_text())
        entries = [{}]
        if "matrix" in stage:
            axes = {axis: params[value[2:-1].split(".")[0]][value[2:-1].split(".")[1]] for axis, value in stage["matrix"].items()}
            entries = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        for item in entries:
            def filled(text: str) -> str:
                for axis, value in item.items():
                    text = text.replace(f"${{item.{axis}}}", str(value))
                return text

            command = filled(stage["cmd"]).split()
            label = "-".join([name, *map(str, item.values())])
            found.append((pipeline, label, command[command.index("-m") + 1:], [filled(key) for key in stage.get("params", [])]))
    return found


@pytest.mark.parametrize("pipeline,name,command,listed", stage_runs(), ids=lambda value: value if isinstance(value, str) else "")
def test_each_stage_lists_the_params_it_reads_and_no_other(
    pipeline: Path, name: str, command: list[str], listed: list[str], digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage's ``configure`` (all a stage reads of its params, before it runs anything) is
    given parameters that note what is read: every key read is listed, and every key listed
    is read, not only written over and then read. The data are the digits, so that the specs can be checked against a data set."""
    monkeypatch.chdir(pipeline.parent)  # DVC runs a stage where its dvc.yaml is, on that folder's params.yaml
    module = importlib.import_module(command[0])
    reads: set[str] = set()
    overridden: set[str] = set()
    monkeypatch.setattr(module, "load_params", lambda argv: Recorded(load_params(argv), reads, overridden))
    recording_merges(monkeypatch)
    digits_fit = [f"paths.data={digits}", "dataset.name=digits", "dataset.validation_size=180", "dataset.test_size=180",
                  "model.decoder.n_layers=4"]  # as the digits were prepared; the paper's 12 layers outsee 8x8
    if pipeline.parent.name == "search":  # its space's 8 layers outsee 8x8 too
        digits_fit.append("sweep.space.model.decoder.n_layers=[4]")
    module.configure([*command[1:], *digits_fit])

    if any(key.startswith("runs.") for key in reads):
        # A stage that lays `runs` over the rest depends on whatever a run leaves alone: users
        # edit `runs`, so the keys the runs override now stay listed. A key the stage's own
        # code always writes over (a sweep's point, its epochs) is no dependency.
        reads |= overridden

    # The workspace's layout is spelled out in the stage's deps and outs, and Ray's storage is
    # the environment's: where files live is no parameter (pipeline.params.read_paths).
    reads = {key for key in reads if not key.startswith("paths.")}
    assert not [key for key in listed if key == "paths" or key.startswith("paths.")], f"{name} lists paths in its params"

    def covered(key: str) -> bool:
        return any(key == entry or key.startswith(f"{entry}.") for entry in listed)

    unlisted = sorted(key for key in reads if not covered(key))
    unread = sorted(key for key in leaves(yaml.safe_load(Path("params.yaml").read_text())) if covered(key) and key not in reads)
    where = f"{pipeline.relative_to(REPO)}: stage {name}"
    assert not unlisted, f"{where} reads {unlisted} but its params do not list them"
    assert not unread, f"{where} lists {unread} in params but never reads them: a change to them would rerun it for nothing"
