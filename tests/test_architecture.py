"""The design's invariants: imports in one direction without cycles, one namespace nothing shadows,
fast paths that import neither Ray's Tune nor torch, and options declared once in the schema."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autohas import options as schema
from autohas.errors import AutohasError
from tests.conftest import ROOT

PY = sys.executable
PACKAGES = {"autohas": ROOT / "autohas", "autohas.searchers": ROOT / "searchers", "autohas.trainables": ROOT / "trainables"}
# core <- algorithms <- driver: a module may import its own layer and the layers before it
CORE = ("autohas.errors", "autohas.spaces", "autohas.bench", "autohas.models", "autohas.data", "autohas.schema",
        "autohas.layout", "autohas.records", "autohas.storage", "autohas.latency", "autohas.pareto")
ALGORITHMS = ("autohas.searchers", "autohas.trainables")


def layer(module: str) -> int:
    """0 core, 1 algorithms, 2 driver (everything else of autohas, the package itself included)."""
    if any(module == m or module.startswith(m + ".") for m in CORE):
        return 0
    if any(module == m or module.startswith(m + ".") for m in ALGORITHMS):
        return 1
    return 2


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in it (inside functions and under
    TYPE_CHECKING too); `from package import name` counts as importing package.name when that is a module."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in mods.items():
        deps = set()
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(filter(None, (resolve(a.name) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in mods else resolve(base))
        deps.discard(None)
        deps.discard(module)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_function_level_and_type_only_imports(tmp_path):
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from toy import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.a import f\n")
    saved = dict(PACKAGES)
    PACKAGES.clear()
    PACKAGES["toy"] = package
    try:
        graph = import_graph()
    finally:
        PACKAGES.clear()
        PACKAGES.update(saved)
    assert graph["toy.a"] == {"toy.b"} and graph["toy.b"] == {"toy.a"}
    assert cycles(graph) == [["toy.a", "toy.b"]]


def test_imports_have_no_cycle_and_go_one_way():
    graph = import_graph()
    assert "autohas.searchers.base" in graph and "autohas.trainables.train" in graph
    assert cycles(graph) == []
    upward = sorted((m, d) for m, deps in graph.items() for d in deps if layer(d) > layer(m))
    assert upward == [], "a core module imports an algorithm or the driver, or an algorithm the driver"


def _imported_by(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m autohas.tune ARGS`; the process and the modules it imported."""
    done = subprocess.run([PY, "-X", "importtime", "-m", "autohas.tune", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, imported


def test_help_imports_neither_ray_tune_nor_torch():
    done, imported = _imported_by("--help")
    assert done.returncode == 0 and "--warmup-ratio" in done.stdout
    assert "autohas.options" in imported  # the measurement sees our own modules
    assert not {m for m in imported if m == "torch" or m.startswith(("torch.", "ray.tune", "ray."))}


@pytest.mark.parametrize("args", [["--algo", "nope", "--space", "nats-tss"], ["--algo", "rea", "--space", "nats-tss", "--seeds", "0"],
                                  ["--algo", "rea", "--space", "darts"]])
def test_input_errors_import_neither_ray_nor_torch(args):
    done, imported = _imported_by(*args)
    said = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(said) == 1 and said[0].startswith("autohas.tune: error: ")
    assert not {m for m in imported if m in ("torch", "ray") or m.startswith(("torch.", "ray."))}


def test_a_users_searchers_module_does_not_shadow_ours(tmp_path):
    (tmp_path / "searchers.py").write_text("raise ImportError('the user module was imported')\n")
    (tmp_path / "trainables").mkdir()
    (tmp_path / "trainables" / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
    done = subprocess.run([PY, "-m", "autohas.tune", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "searchers: random, rea" in done.stdout, done.stderr
    bad = subprocess.run([PY, "-m", "autohas.tune", "--algo", "nope", "--space", "nats-tss"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown algorithm 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    probe = "import autohas.searchers, autohas.trainables.train; print(autohas.searchers.__file__)"
    where = subprocess.run([PY, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and Path(where.stdout.strip()).parent == ROOT / "searchers"


def test_the_package_exports_the_public_names_lazily():
    done = subprocess.run([PY, "-c", "import sys, autohas; print('ray' in sys.modules, 'torch' in sys.modules); "
                           "print(autohas.get_space('nats-tss').size, callable(autohas.run), autohas.Space.__name__)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "15625", "True", "Space"]


def test_an_option_declared_in_the_schema_alone_reaches_help_yaml_and_the_resume_check(monkeypatch, tmp_path):
    knob = schema.Option("dropout_rate", float, help="a test knob: dropout before the classifier", fixed_on_resume=True)
    monkeypatch.setattr(schema, "OPTIONS", schema.OPTIONS + (knob,))
    assert "--dropout-rate" in schema.build_parser().format_help() and "a test knob" in schema.build_parser().format_help()
    config = tmp_path / "c.yaml"
    config.write_text("dropout-rate: 0.3\n")
    assert schema.read_yaml(str(config)) == {"dropout_rate": 0.3}
    merged = schema.coerce(schema.merge(["--algo", "rea", "--space", "nats-tss", "--config", str(config)]))
    assert merged["dropout_rate"] == 0.3
    given = schema.Options(**schema.coerce(schema.merge(["--algo", "rea", "--space", "nats-tss", "--dropout-rate", "0.2",
                                                          "--config", str(config)])))
    assert given.dropout_rate == 0.2 and "dropout_rate" in schema.fixed_on_resume()
    assert schema.saved_options(given)["dropout_rate"] == 0.2
    # a resumed experiment keeps it
    from autohas.experiment import check_experiment

    folder = tmp_path / "store" / "x"
    folder.mkdir(parents=True)
    (folder / "experiment.yaml").write_text("algo: [rea]\nspace: nats-tss\ndropout_rate: 0.3\n")
    given.storage, given.name, given.resume = str(tmp_path / "store"), "x", True
    with pytest.raises(AutohasError, match="cannot resume .* with --dropout-rate 0.2: it was started with 0.3"):
        check_experiment(given)
    given.dropout_rate = 0.3
    assert check_experiment(given) == str(folder)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dropout-rat: 0.3\n")
    with pytest.raises(AutohasError, match="unknown option 'dropout-rat'"):
        schema.read_yaml(str(bad))


def test_a_resume_that_changes_the_budget_is_refused_before_ray_starts(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "experiment.yaml").write_text("algo: [random]\nspace: nats-sss\ntime_budget: 100.0\n")
    (folder / "results.jsonl").write_text("")
    probe = ("import sys; from autohas.tune import main; "
             f"rc = main(['--algo', 'random', '--space', 'nats-sss', '--dataset', 'digits', '--time-budget', '50', "
             f"'--storage', {str(tmp_path)!r}, '--name', 't', '--resume']); print(rc, 'ray' in sys.modules)")
    done = subprocess.run([PY, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUTOHAS_DATA_CACHE": str(tmp_path / "cache")})
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "cannot resume" in done.stderr and "--time-budget 50.0: it was started with 100.0" in done.stderr


def test_a_tabular_simulate_run_imports_no_torch(table_path, tmp_path):
    probe = ("import sys; from autohas.tune import main; "
             f"rc = main(['--algo', 'rea,random', '--space', 'nats-tss', '--benchmark', {str(table_path)!r}, '--seeds', '2', "
             f"'--num-samples', '5', '--storage', {str(tmp_path)!r}, '--name', 's']); "
             "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([PY, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stdout + done.stderr
