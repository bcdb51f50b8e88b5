"""Does adaptation pay off, and which arm? recipes/adapt.yaml on each public task, every arm a cell, 3 seeds each.

    make data-full                                  # once: the full corpora and pkg_section under DVC
    python benchmarks/adaptation.py                 # both tasks; --task pkg_daemon for one

Per task, two `dvc exp run --temp` experiments (your workspace and params.yaml stay as they are), from scratch:
the recipe with `select.fraction: 1` (DAPT on the whole corpus; TAPT; DAPT then TAPT; end-task-aware twins), and
the recipe as written (retrieval-selected DAPT, and it then TAPT). Every pretraining arm gets the same number of
updates: TAPT's epochs are set per task to the DAPT phase's updates over the task's train texts. Arms come from
each experiment's plots/finetune.csv (mean and spread over seeds, difference from the reference with its paired
bootstrap interval) and reports/finetune.csv (per-seed test F1); the chosen arm is the best by mean eval F1.
Writes benchmarks/results/adaptation.json and .md; the experiments stay in `dvc exp show`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.core.atomic import write_text  # noqa: E402
from vbert.tools.recipe import dvc_value, read_recipe  # noqa: E402
from vbert.tools.summary import verdict  # noqa: E402

RECIPE = REPO / "recipes/adapt.yaml"
CORPUS = "data/full"
TASKS = {  # name -> (task folder, positive label or '')
    "pkg_section": ("data/full/pkg_section", ""),
    "pkg_daemon": ("data/tasks/pkg_daemon", "daemon"),
}
WHOLE, SELECTED = "whole", "selected"


def dvc(*args: str) -> str:
    bin_dir = str(Path(sys.executable).parent)  # the stages' `python` is this environment's, as under `make`
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([f"{bin_dir}/dvc", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise click.ClickException(f"dvc {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def experiment_file(name: str, path: str) -> str:
    """A file of experiment `name`, read from its commit."""
    for commit in json.loads(dvc("exp", "show", "--json", "--no-fetch")):
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                if revision.get("name") == name:
                    shown = subprocess.run(
                        ["git", "show", f"{revision['rev']}:{path}"], cwd=REPO, capture_output=True, text=True
                    )
                    if shown.returncode:
                        raise click.ClickException(f"experiment {name}: no {path}")
                    return shown.stdout
    raise click.ClickException(f"no experiment named {name} in `dvc exp show`")


def overrides(task: str, which: str) -> dict:
    """The recipe with this task, the full corpus, equal updates per pretraining arm, and the experiment's part."""
    values = read_recipe(RECIPE)
    folder, positive = TASKS[task]
    train_rows = len((REPO / folder / "train.tsv").read_text(encoding="utf-8").splitlines()) - 1
    dapt_updates = values["pretrain.num_train_steps"]
    values |= {
        "vnlp.input_dir": CORPUS,
        "finetune.task_dir": folder,
        "finetune.positive_label": positive or "''",
        "pretrain.task_adaptive_epochs": max(1, round(dapt_updates * values["pretrain.train_batch_size"] / train_rows)),
    }
    if which == WHOLE:
        values |= {"select.fraction": 1}
    else:  # the selected corpus's arms only; the rest are the same as in the whole-corpus experiment
        values |= {"pretrain.task_adaptive_from_steps": [dapt_updates], "finetune.end_task_aware_weight": 0}
    return values


ARM_NAMES = {  # (experiment, cell prefix) -> arm
    (WHOLE, "reference"): "reference",
    (WHOLE, "msl128-step-"): "dapt",
    (WHOLE, "tapt-from-step-000000-"): "tapt",
    (WHOLE, "tapt-from-step-"): "dapt+tapt",
    (SELECTED, "msl128-step-"): "selected_dapt",
    (SELECTED, "tapt-from-step-"): "selected_dapt+tapt",
}


def arm_name(which: str, cell: str) -> str | None:
    """The arm a cell of experiment `which` is: reference+mlm is end_task_aware, another twin <arm>+end_task_aware."""
    twin = cell.endswith("+mlm")
    base = cell.removesuffix("+mlm")
    for (experiment, prefix), name in ARM_NAMES.items():
        if experiment == which and base.startswith(prefix):
            if not twin:
                return name
            return "end_task_aware" if name == "reference" else f"{name}+end_task_aware"
    return None


def experiment_arms(name: str, which: str) -> dict[str, dict]:
    """The experiment's arms: test F1 over seeds, eval F1, the difference from its reference, minutes fine-tuning."""
    summary = list(csv.DictReader(io.StringIO(experiment_file(name, "plots/finetune.csv"))))
    rows = list(csv.DictReader(io.StringIO(experiment_file(name, "reports/finetune.csv"))))
    arms = {}
    for row in summary:
        arm = arm_name(which, row["cell"])
        if arm is None or (which == SELECTED and arm == "reference"):
            continue
        runs = [r for r in rows if r["cell"] == row["cell"]]
        kept = {}
        for run in runs:  # the epoch kept per seed: the best eval F1, the first on ties
            seed = run["seed"]
            if seed not in kept or float(run["eval_f1"]) > float(kept[seed]["eval_f1"]):
                kept[seed] = run
        arms[arm] = {
            "cell": row["cell"],
            "test_f1_mean": float(row["test_f1_mean"]),
            "test_f1_std": float(row["test_f1_std"]),
            "test_f1": [float(kept[seed]["test_f1"]) for seed in sorted(kept, key=int)],
            "eval_f1_mean": float(row["eval_f1_mean"]),
            "minus_reference": float(row["minus_reference"]),
            "minus_reference_ci95": [float(row["minus_reference_low"]), float(row["minus_reference_high"])],
            "finetune_minutes": round(sum(float(r["train_seconds"]) for r in runs) / 60, 1),
        }
    return arms


def task_result(task: str, experiments: dict[str, str], minutes: dict[str, float]) -> dict:
    arms: dict[str, dict] = {}
    for which, name in experiments.items():
        arms |= experiment_arms(name, which)
    metrics = json.loads(experiment_file(experiments[WHOLE], "metrics/finetune.json"))
    baselines = {
        "majority": metrics["baselines"]["majority"]["f1"],
        "tfidf_lr": metrics["baselines"]["tfidf_lr"]["test_f1"],
        "embeddings_lr": metrics["baselines"]["embeddings_lr"]["test_f1"],
    }
    chosen = max((a for a in arms if a != "reference"), key=lambda a: arms[a]["eval_f1_mean"])
    best_baseline = max(("tfidf_lr", "embeddings_lr"), key=lambda b: metrics["baselines"][b]["eval_f1"])
    return {
        "task": TASKS[task][0],
        "positive_label": TASKS[task][1],
        "arms": arms,
        "baselines": baselines,
        "best_baseline_by_eval": best_baseline,
        "chosen_arm": chosen,
        "chosen_minus_reference": arms[chosen]["minus_reference"],
        "ci95": arms[chosen]["minus_reference_ci95"],
        "chosen_minus_best_baseline": round(arms[chosen]["test_f1_mean"] - baselines[best_baseline], 6),
        "experiment_minutes": minutes,
        "params": {which: {k: dvc_value(v) for k, v in overrides(task, which).items()} for which in experiments},
    }


def _f1(arm: dict) -> str:
    return f"{arm['test_f1_mean']:.4f} ± {arm['test_f1_std']:.4f}"


def markdown(data: dict) -> str:
    lines = [f"# Does adaptation pay off? ({data['machine']['cpu']}, {data['machine']['cpus']} cores)", ""]
    lines += ["`python benchmarks/adaptation.py`: recipes/adapt.yaml on each task, 3 seeds per arm.", ""]
    for task, result in data["tasks"].items():
        low, high = result["ci95"]
        lines += [
            f"## {task} (`{result['task']}`)",
            "",
            "| arm | cell | test F1 (mean ± std) | minus reference [95% interval] | fine-tuning minutes |",
            "|---|---|---|---|---|",
        ]
        for name, arm in result["arms"].items():
            a, b = arm["minus_reference_ci95"]
            lines.append(
                f"| {name} | {arm['cell']} | {_f1(arm)} | {100 * arm['minus_reference']:+.2f} "
                f"[{100 * a:+.2f}, {100 * b:+.2f}] | {arm['finetune_minutes']} |"
            )
        lines += [
            "",
            "Baselines: " + ", ".join(f"{k} {v:.4f}" for k, v in result["baselines"].items()),
            "",
            f"Chosen by eval: **{result['chosen_arm']}**, {100 * result['chosen_minus_reference']:+.2f} F1 over the "
            f"reference [{100 * low:+.2f}, {100 * high:+.2f}] ({verdict((low, high))}), "
            f"{100 * result['chosen_minus_best_baseline']:+.2f} over the best baseline by eval "
            f"({result['best_baseline_by_eval']}). Minutes per experiment: {result['experiment_minutes']}.",
            "",
        ]
    return "\n".join(lines)


def run_task(task: str) -> dict:
    if not (REPO / TASKS[task][0] / "train.tsv").exists() or not (REPO / CORPUS / "docs.txt.gz").exists():
        raise click.ClickException(f"{TASKS[task][0]} or {CORPUS}: missing; run `make data-full` first")
    experiments, minutes = {}, {}
    for which in (WHOLE, SELECTED):
        name = f"adapt-{task}-{which}".replace("_", "-")
        settings = [item for k, v in overrides(task, which).items() for item in ("-S", f"{k}={dvc_value(v)}")]
        started = time.perf_counter()
        dvc("exp", "run", "--temp", "--force", "--name", name, *settings, "finetune")
        experiments[which], minutes[which] = name, round((time.perf_counter() - started) / 60, 1)
    return task_result(task, experiments, minutes)


@click.command()
@click.option("--task", "tasks", multiple=True, type=click.Choice(list(TASKS)), help="default: every task")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/adaptation.json")
@click.option("--render-only", is_flag=True, help="only write the markdown again from the JSON result at --out")
def main(tasks: tuple[str, ...], out: Path, render_only: bool) -> None:
    if render_only:
        write_text(out.with_suffix(".md"), markdown(json.loads(out.read_text())))
        return
    data = {"tasks": {task: run_task(task) for task in tasks or TASKS}, "machine": machine()}
    click.echo(write_result(out, data, markdown))


if __name__ == "__main__":
    main()
