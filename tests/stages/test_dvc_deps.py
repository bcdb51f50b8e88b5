"""dvc.yaml's deps cover every project module each stage runs, so a cache never serves outputs of old code.

The import closure is read from the source (`vbert.tools.deps`, ast, nothing executed). Then, in a scratch DVC
project whose stages are all recorded as up to date, editing one module per stage makes `dvc status` report the
stages that run it, and only those, and `dvc repro --dry --force-downstream` lists them and everything downstream
(plain `dvc repro` re-runs a downstream stage when the edited stage's outputs change, which it cannot know before).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from vbert.tools.deps import closure, params_mismatches, runs_code, stage_scripts, uncovered_modules

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_module_a_stage_runs_is_in_its_deps():
    missing = uncovered_modules(REPO)
    assert not missing, "\n".join(f"stage {s}: dvc.yaml deps miss {', '.join(map(str, m))}" for s, m in missing.items())


def test_the_check_names_the_stage_and_the_module_a_dep_misses(tmp_path):
    for name in ("stages", "vbert"):
        shutil.copytree(REPO / name, tmp_path / name)
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline["stages"]["tfrecords"]["deps"].remove("vbert/data")  # the masking tfrecords runs, among others
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    missing = uncovered_modules(tmp_path)
    assert list(missing) == ["tfrecords"]
    assert Path("vbert/data/masking.py") in missing["tfrecords"]


def test_every_stage_lists_exactly_the_params_it_reads():
    assert params_mismatches(REPO) == {}


def test_the_params_check_names_a_key_read_but_not_listed_and_one_listed_but_not_read(tmp_path):
    for name in ("stages", "vbert"):
        shutil.copytree(REPO / name, tmp_path / name)
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline["stages"]["vocab"]["params"].remove("vocab")  # the switch the vocab stage reads
    pipeline["stages"]["ir"]["params"].append("model")  # a switch the ir stage never reads
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    assert params_mismatches(tmp_path) == {
        "vocab": "reads vocab but params: does not list it",
        "ir": "params: lists model, which it does not read",
    }


def test_closures_follow_imports_inside_functions_and_servers_started_with_dash_m():
    bench = closure(REPO / "stages/bench.py", REPO)
    assert Path("vbert/serving/__main__.py") in bench  # started as `python -m vbert.serving` by the bench
    assert Path("vbert/pipeline/bench.py") in bench  # imported inside the stage's function
    assert Path("vbert/data/masking.py") in closure(REPO / "stages/tfrecords.py", REPO)
    assert stage_scripts(STAGES["ir"]["cmd"], REPO) == [REPO / "stages/ir.py"]
    assert {Path("stages/vocab.py"), Path("vbert/text/vocabulary.py")} <= closure(REPO / "stages/params.py", REPO)


def test_package_inits_run_no_code():
    """The closure leaves out package __init__.py files; that is safe only while they hold just a docstring."""
    running = [p for p in (REPO / "vbert").rglob("__init__.py") if runs_code(p)]
    assert running == []


def command_paths(stage: dict) -> list[str]:
    """The values of a stage command's path options (`--x path`), `${...}` left as written."""
    words = shlex.split(stage["cmd"])
    return [value for option, value in itertools.pairwise(words) if option.startswith("--")]


def declared(entries) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


@pytest.mark.parametrize("name", list(STAGES))
def test_paths_are_written_once_on_the_command_line(name):
    """Every path a stage reads or writes is on its command line and is a dep or an out (nothing left to a click
    default), and every input it names is made by an earlier stage or is a source file: changed outputs therefore
    re-run everything downstream."""
    stage = STAGES[name]
    paths = set(command_paths(stage))
    deps = declared(stage.get("deps"))
    outs = declared(stage.get("outs")) | declared(stage.get("metrics")) | declared(stage.get("plots"))
    inputs = {p for p in paths if p not in outs}
    assert outs <= paths, f"{name}: outputs not passed on the command line: {outs - paths}"
    upstream = set().union(*(declared(s.get("outs")) for s in STAGES.values()))
    for path in inputs:
        covered = any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)
        assert covered, f"{name}: reads {path} but does not list it in deps"
        made = any(path == o or path.startswith(o + "/") for o in upstream)
        assert made or "${" in path or (REPO / path).exists(), f"{name}: {path} is neither made upstream nor a source"


def sh(*args: str, cwd: Path) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def placeholder(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".json", ".csv", ".md", ".txt"):
        path.write_text("{}\n" if path.suffix == ".json" else "a\n1\n")
    else:
        path.mkdir(exist_ok=True)
        (path / "placeholder").write_text("x")


def fake_outputs(root: Path) -> None:
    """Every out, metric and plot of every stage, as small placeholder files, so that `dvc commit` can record them,
    and the deps inside another stage's out (models/finetune/best)."""
    outs = set()
    for stage in STAGES.values():
        for kind in ("outs", "metrics", "plots"):
            outs |= declared(stage.get(kind))
            for path in declared(stage.get(kind)):
                placeholder(root / path)
    for stage in STAGES.values():
        for dep in declared(stage.get("deps")):
            if any(dep.startswith(out + "/") for out in outs):
                placeholder(root / dep)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A scratch git + DVC project: the real dvc.yaml, params, stages and package, every stage recorded up to date."""
    root = tmp_path_factory.mktemp("deps") / "repo"
    root.mkdir()
    for name in ("dvc.yaml", "params.yaml", "stages", "vbert", "data/sample", "data/lexicon.txt"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, root / name)
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    fake_outputs(root)
    sh("dvc", "commit", "-f", "-q", cwd=root)
    assert json.loads(sh("dvc", "status", "--json", cwd=root)) == {}
    return root


CHECK = "params"  # the params stage: its output never changes, so nothing downstream re-runs because it ran


def downstream(name: str) -> set[str]:
    """Every stage that reads, directly or through others, what stage `name` writes (from dvc.yaml)."""
    found, frontier = set(), {name}
    while frontier:
        outs = set().union(*(declared(STAGES[n].get("outs")) for n in frontier))
        frontier = {
            n
            for n, s in STAGES.items()
            if n not in found and any(d == o or d.startswith(o + "/") for d in declared(s.get("deps")) for o in outs)
        }
        found |= frontier
    return found


EDITED = {  # one module per stage; the edit must be reported for every stage whose deps cover it
    "ingest": "vbert/text/documents.py",
    "vnlp": "vbert/text/spelling.py",
    "vocab": "vbert/text/vocabulary.py",
    "tfrecords": "vbert/data/masking.py",
    "pretrain": "vbert/model/optimization.py",
    "finetune": "vbert/pipeline/finetune.py",
    "distill": "vbert/pipeline/distill.py",
    "freeze": "vbert/pipeline/freeze.py",
    "ir": "vbert/pipeline/ir.py",
    "bench": "vbert/bench/measure.py",
}


@pytest.mark.slow
@pytest.mark.xdist_group("dvc")
@pytest.mark.parametrize("stage", list(EDITED))
def test_editing_a_module_makes_dvc_status_report_the_stages_that_run_it(recorded, stage):
    module = EDITED[stage]
    runs_it = {name for name in STAGES if Path(module) in closure(REPO / f"stages/{name}.py", REPO)}
    assert stage in runs_it
    original = (recorded / module).read_text()
    (recorded / module).write_text(original + "\n# edited\n")
    try:
        status = json.loads(sh("dvc", "status", "--json", cwd=recorded))
        # what `dvc repro` would run if the edit changes the stage's outputs (it does not run them otherwise); the
        # params stage frozen, as its output cannot change
        sh("dvc", "freeze", "-q", CHECK, cwd=recorded)
        dry = sh("dvc", "repro", "--dry", "--force-downstream", cwd=recorded)
    finally:
        (recorded / module).write_text(original)
        sh("dvc", "unfreeze", "-q", CHECK, cwd=recorded)
    assert runs_it <= set(status), f"editing {module}: dvc status reports {sorted(status)}, not all of {runs_it}"
    covering = {n for n, s in STAGES.items() if any(module.startswith(d) for d in declared(s.get("deps")))}
    assert CHECK in covering and set(status) == covering
    changed = status[stage][0]["changed deps"]
    assert any(module.startswith(dep) and state == "modified" for dep, state in changed.items()), changed
    would_run = set(re.findall(r"Running stage '(\w+)'", dry))
    covering -= {CHECK}
    assert would_run == covering | set().union(*(downstream(name) for name in covering)), dry
    assert json.loads(sh("dvc", "status", "--json", cwd=recorded)) == {}


@pytest.mark.xdist_group("dvc")
def test_a_stage_runs_the_package_of_its_own_workspace(recorded):
    """dvc.yaml's `python -m stages.<name>` imports `vbert` from the workspace the command runs in (a `dvc exp run
    --temp` copy, a queued experiment's), not from wherever `pip install -e` pointed; `python stages/<name>.py`
    would not (the control)."""
    cli = recorded / "vbert/core/cli.py"
    original = cli.read_text()
    cli.write_text(original + '\nprint("the workspace copy")\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        command = [sys.executable, *shlex.split(STAGES["freeze"]["cmd"])[1:3], "--help"]
        as_dvc_runs_it = subprocess.run(command, cwd=recorded, env=env, capture_output=True, text=True)
        by_path = subprocess.run(
            [sys.executable, "stages/freeze.py", "--help"], cwd=recorded, env=env, capture_output=True, text=True
        )
    finally:
        cli.write_text(original)
    assert shlex.split(STAGES["freeze"]["cmd"])[:3] == ["python", "-m", "stages.freeze"]
    assert as_dvc_runs_it.returncode == 0 and "the workspace copy" in as_dvc_runs_it.stdout
    assert "the workspace copy" not in by_path.stdout  # the installed package, not this copy
