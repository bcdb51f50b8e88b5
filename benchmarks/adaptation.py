"""Does adaptation pay off, and which arm? Every arm of recipes/every-arm.yaml on each public task, seeds per arm, run
by run and resumable, so the measurement can be spread over sessions and machines.

    make data-full                                     # once: the full corpora and pkg_section in data/full
    python benchmarks/adaptation.py run                # every task, arm and seed not yet recorded
    python benchmarks/adaptation.py run --task pkg_daemon --arm reference --arm tapt --hours 3
    python benchmarks/adaptation.py report             # benchmarks/results/adaptation.json and .md from the records

Arms (Gururangan et al. 2020; Dery et al. 2022), each a cell of the pipeline's own stages:

    reference            the starting model fine-tuned (no adaptation)
    end_task_aware       the reference fine-tuned with the masked-LM loss of its batches' texts added
    tapt                 masked LM on the task's train texts (masks re-drawn each epoch), then fine-tuned
    dapt                 masked LM on the whole domain corpus, then fine-tuned
    selected_dapt        masked LM on the corpus passages nearest the task's train texts (select.fraction)
    selected_dapt+tapt   selected_dapt, then TAPT

Every pretraining arm gets the same number of updates (the recipe's `pretrain.num_train_steps`; TAPT's epochs are
set per task to match). The stages run as the pipeline runs them (`python -m stages.<stage> --params ...`) in
benchmarks/work/adaptation/, each step's output reused while its params are the same; a run's record is
benchmarks/results/adaptation/<task>/<arm>/seed-<seed>.json (its epochs' scores, its test predictions, minutes, the
machine), committed, and skipped by later runs while the protocol (the params it ran with) is the same.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.core.atomic import write_json, write_text  # noqa: E402
from vbert.tools.recipe import applied, read_recipe  # noqa: E402
from vbert.tools.summary import verdict  # noqa: E402

log = logging.getLogger("adaptation")

RECIPE = REPO / "recipes/every-arm.yaml"
CORPUS = REPO / "data/full"
WORK = REPO / "benchmarks/work/adaptation"
RECORDS = REPO / "benchmarks/results/adaptation"
RESULT = REPO / "benchmarks/results/adaptation.json"
TASKS = {  # name -> (task folder, positive label or '')
    "pkg_section": ("data/full/pkg_section", ""),
    "pkg_daemon": ("data/tasks/pkg_daemon", "daemon"),
}
SEEDS = (1, 2, 3)
# Every arm computes in fp32, whatever the machine: `auto` would mean bf16 on a CPU with AVX512_BF16 and fp32 on one
# without, and arms recorded on different machines would then differ in precision as well as in recipe (bf16
# fine-tuning leaned 1.2 points lower in benchmarks/results/finetune_precision.md).
PRECISION = "fp32"
PRECISION_KEYS = ("select.mixed_precision", "pretrain.mixed_precision", "finetune.mixed_precision")

# pretraining configurations: what each changes in the recipe (None: the recipe's value, filled in per task)
START, TAPT, WHOLE, SELECTED = "start", "tapt", "whole", "selected"
SHARED_CONFIGS = (START, WHOLE)  # no task text in their pretraining: one run serves every task
ARMS = {  # arm -> (pretraining configuration, cell name or its prefix, end-task-aware)
    "reference": (START, "reference", False),
    "end_task_aware": (START, "reference", True),
    "tapt": (TAPT, "tapt-from-step-000000-step-", False),
    "dapt": (WHOLE, "msl128-step-", False),
    "selected_dapt": (SELECTED, "msl128-step-", False),
    "selected_dapt+tapt": (SELECTED, "tapt-from-step-", False),
}


# ---- params ------------------------------------------------------------------------------------------------


def train_rows(task: str) -> int:
    return len((REPO / TASKS[task][0] / "train.tsv").read_text(encoding="utf-8").splitlines()) - 1


def config_values(task: str, config: str) -> dict:
    """The recipe's values for one task and pretraining configuration (dotted keys)."""
    recipe = read_recipe(RECIPE)
    folder, positive = TASKS[task]
    updates = recipe["pretrain.num_train_steps"]
    tapt_epochs = max(1, round(updates * recipe["pretrain.train_batch_size"] / train_rows(task)))
    values = (
        recipe
        | {
            "vnlp.input_dir": str(CORPUS.relative_to(REPO)),
            "finetune.task_dir": folder,
            "finetune.positive_label": positive,
            "finetune.seeds": [SEEDS[0]],
            "finetune.jobs": 1,
        }
        | dict.fromkeys(PRECISION_KEYS, PRECISION)
    )
    if config in (START, TAPT):  # no domain phase: the starting checkpoint alone
        values |= {"select.fraction": 1, "pretrain.num_train_steps": 0, "pretrain.save_checkpoints_steps": 1}
        values |= {"pretrain.task_adaptive_from_steps": [0]}
    if config == WHOLE:
        values |= {"select.fraction": 1}
    if config in (START, WHOLE):
        values |= {"pretrain.task_adaptive_epochs": 0}
    if config == TAPT:
        values |= {"pretrain.task_adaptive_epochs": tapt_epochs, "pretrain.task_adaptive_from_steps": [0]}
    if config == SELECTED:
        values |= {"pretrain.task_adaptive_epochs": tapt_epochs, "pretrain.task_adaptive_from_steps": [updates]}
    return values


def merged_params(task: str, config: str) -> dict:
    """params.yaml with the configuration's values in place."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    return applied(params, config_values(task, config))


def params_path(task: str, config: str) -> Path:
    """Where the configuration's params are written: the stages (and a run's record) read them from there."""
    return WORK / task / config / "params.yaml"


def params_file(task: str, config: str) -> Path:
    """The configuration's params from the recipe as it is now, written to params_path."""
    path = params_path(task, config)
    write_text(path, yaml.safe_dump(merged_params(task, config), sort_keys=False))
    return path


def work_dir(task: str, config: str) -> Path:
    """Where a configuration's pretraining goes: one folder for every task when no task text is in it."""
    return WORK / config if config in SHARED_CONFIGS else WORK / task / config


FINETUNE_ONLY = ("model", "vocab", "vocabulary", "finetune")  # what the reference's result depends on
NOT_RESULTS = ("seeds", "jobs", "end_task_aware_weight")  # finetune knobs that do not change a run's result
UNREAD = ("ingest", "distill", "freeze", "ir", "bench")  # sections no arm reads (the corpus comes already split)


def protocol(task: str, arm: str, params: dict | None = None) -> dict:
    """Everything a run's result depends on but its seed: the arm, and the params of the stages it goes through
    (the reference: the fine-tuning's alone; end-task-aware: also the head warm-up's, whose MLM head it trains on;
    the pretrained arms: every stage's). `params`: those the run read (default: the recipe's as it is now)."""
    config, cell, end_task_aware = ARMS[arm]
    params = copy.deepcopy(params) if params is not None else merged_params(task, config)
    weight = params["finetune"]["end_task_aware_weight"] if end_task_aware else 0
    params["finetune"] = {k: v for k, v in params["finetune"].items() if k not in NOT_RESULTS}
    kept = FINETUNE_ONLY if arm == "reference" else [name for name in params if name not in UNREAD]
    return {"arm": arm, "cell": cell, "end_task_aware_weight": weight, "params": {k: params[k] for k in kept}}


def protocol_digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- the pipeline's stages, each step reused while its inputs are the same ------------------------------


def child_env() -> dict[str, str]:
    """The environment of the stage and fine-tuning processes this script starts."""
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_stage(name: str, args: list[str], out: Path, key: dict) -> float:
    """`python -m stages.<name> ARGS` unless `out` holds a finished run with the same `key`; returns the minutes
    the run took (then or now)."""
    marker = out.parent / f".{out.name}.done.json"
    if marker.exists() and out.exists():
        done = json.loads(marker.read_text())
        if done["key"] == json.loads(json.dumps(key)):
            return done["minutes"]
    started = time.perf_counter()
    log.info("stage %s -> %s", name, out.relative_to(REPO))
    done = subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=REPO, env=child_env())
    if done.returncode:
        raise click.ClickException(f"stage {name} failed (exit {done.returncode}); its log is above")
    minutes = round((time.perf_counter() - started) / 60, 1)
    write_json(marker, {"key": key, "minutes": minutes})
    return minutes


def options(**values) -> list[str]:
    """A stage's command-line options: task_dir=x -> ["--task-dir", "x"]."""
    return [item for name, value in values.items() for item in (f"--{name.replace('_', '-')}", str(value))]


def section(params: Path, *names: str) -> dict:
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    return {name: data[name] for name in names}


def prepare(task: str, config: str) -> tuple[Path, float]:
    """The configuration's pretraining folder, every stage up to pretrain run (or reused); returns it and the
    minutes its own steps took (the selection of a task's passages, pretraining), the shared corpus steps apart."""
    folder, _ = TASKS[task]
    p = params = params_file(task, config)
    clean, vocab = WORK / "clean", WORK / "vocab"
    repeat = section(params, "vnlp")["vnlp"]["task_text_repeat"]
    run_stage(
        "vnlp",
        options(params=p, task_dir=folder, out=clean, metrics=WORK / "vnlp.json"),
        clean,
        section(params, "corpus", "vnlp") | {"task": folder if repeat else None},
    )
    run_stage(
        "vocab",
        options(params=p, clean=clean, out=vocab, metrics=WORK / "vocab.json"),
        vocab,
        section(params, "vocab", "vocabulary") | {"clean": section(params, "corpus", "vnlp")},
    )
    selected_fraction = section(params, "select")["select"]["fraction"]
    corpus_dir = WORK / "all" if selected_fraction >= 1 else WORK / task / "selected-corpus"
    selected = corpus_dir / "selected"
    selection_minutes = run_stage(
        "selection",
        options(params=p, clean=clean, task_dir=folder, out=selected, metrics=corpus_dir / "select.json"),
        selected,
        section(params, "select") | ({"task": folder} if selected_fraction < 1 else {}),
    )
    records = corpus_dir / "tfrecords"
    selection_minutes += run_stage(
        "tfrecords",
        options(params=p, clean=selected, vocab=vocab, out=records, metrics=corpus_dir / "tfrecords.json"),
        records,
        section(params, "do_whole_word_mask", "msl512", "tfrecords")
        | {"select": section(params, "select"), "task": folder if selected_fraction < 1 else None},
    )
    out = work_dir(task, config)
    pretrain = out / "pretrain"
    minutes = run_stage(  # a killed run is resumed by the stage itself
        "pretrain",
        options(params=p, tfrecords=records, vocab=vocab, task_dir=folder, out=pretrain)
        + options(metrics=out / "pretrain.json", plots=out / "pretrain.csv"),
        pretrain,
        section(params, "model", "pretrain", "vocab", "vocabulary", "select", "tfrecords")
        | {"task": folder if config not in SHARED_CONFIGS else None},
    )
    return pretrain, minutes + (selection_minutes if selected_fraction < 1 else 0.0)


# ---- one fine-tuning run -----------------------------------------------------------------------------------


def record_path(task: str, arm: str, seed: int) -> Path:
    return RECORDS / task / arm / f"seed-{seed}.json"


def recorded(task: str, arm: str, seed: int) -> dict | None:
    path = record_path(task, arm, seed)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record["protocol_digest"] == protocol_digest(protocol(task, arm)) else None


def find_cell(pretrain: Path, name: str):
    from vbert.model.checkpoints import pretraining_cells

    cells = pretraining_cells(pretrain, "last")
    found = [cell for cell in cells if cell.name == name or (name.endswith("-") and cell.name.startswith(name))]
    if len(found) != 1:
        raise click.ClickException(f"{pretrain}: no single cell {name!r} among {[c.name for c in cells]}")
    return found[0]


def finetune(task: str, arm: str, seed: int, pretrain: Path, pretrain_minutes: float, parallel: int) -> dict:
    """Fine-tune the arm's cell with `seed` (the finetune stage's run, in its own process) and record it."""
    out = WORK / task / "finetune" / arm / f"seed-{seed}"
    from vbert.model.training import best_epoch

    # the params this run reads, not the recipe when it ends: an edit meanwhile must not relabel its record
    followed = protocol(task, arm, yaml.safe_load(params_path(task, ARMS[arm][0]).read_text(encoding="utf-8")))
    started = time.perf_counter()
    command = [sys.executable, __file__, "finetune-one", "--task", task, "--arm", arm, "--seed", str(seed)]
    command += [*options(pretrain=pretrain, out=out, parallel=parallel)]
    done = subprocess.run(command, cwd=REPO, env=child_env())
    if done.returncode:
        raise click.ClickException(f"{task} {arm} seed {seed}: fine-tuning failed (exit {done.returncode})")
    rows = json.loads((out / "done.json").read_text())
    kept = best_epoch(rows)
    scores = kept["test_f1"], kept["eval_f1"]
    log.info("%s %s seed %d: test F1 %.4f (eval %.4f)", task, arm, seed, *scores)
    record = {
        "task": task,
        "arm": arm,
        "seed": seed,
        "cell": rows[0]["cell"],
        "protocol": followed,
        "protocol_digest": protocol_digest(followed),
        "epochs": rows,
        "kept_epoch": kept["epoch"],
        "eval_f1": kept["eval_f1"],
        "test_f1": kept["test_f1"],
        "test_predictions": np.load(out / "test_predictions.npy").tolist(),
        "finetune_minutes": round((time.perf_counter() - started) / 60, 1),
        "pretraining_minutes": round(pretrain_minutes, 1),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(record_path(task, arm, seed), record)
    return record


@click.group()
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@main.command("finetune-one", hidden=True)
@click.option("--task", required=True)
@click.option("--arm", required=True)
@click.option("--seed", required=True, type=int)
@click.option("--pretrain", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--parallel", type=int, default=1, help="runs at a time: the cores are shared out (the stage's jobs)")
def finetune_one(task: str, arm: str, seed: int, pretrain: Path, out: Path, parallel: int) -> None:
    """One (cell, seed) run of the finetune stage's sweep, its folder moved to OUT."""
    from dataclasses import replace

    from vbert.core.parallel import ordered_map
    from vbert.core.params import read_job
    from vbert.pipeline.finetune import END_TASK_AWARE, FinetuneJob, finetune_run, run_dir, sweep_state

    config, cell_name, _ = ARMS[arm]
    scratch = out.parent / f".{out.name}.sweep"
    job = read_job(FinetuneJob, WORK / task / config / "params.yaml", pretrain_dir=pretrain, out_dir=scratch)
    weight = job.end_task_aware_weight if ARMS[arm][2] else 0
    job = replace(job, end_task_aware_weight=weight, seeds=(seed,), jobs=parallel)
    cell = find_cell(pretrain, cell_name)
    if weight:
        cell = cell._replace(name=cell.name + END_TASK_AWARE)
    list(ordered_map(finetune_run, [(cell, seed)], 1, setup=(sweep_state, (job,))))
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_dir(job, cell.name, seed).rename(out)
    shutil.rmtree(scratch)


# ---- baselines ---------------------------------------------------------------------------------------------


def baselines_path(task: str) -> Path:
    return RECORDS / task / "baselines.json"


@main.command("baselines-one", hidden=True)
@click.option("--task", required=True)
@click.option("--pretrain", required=True, type=click.Path(path_type=Path))
def baselines_one(task: str, pretrain: Path) -> None:
    """The finetune stage's baselines (majority, TF-IDF + LR, frozen embeddings + LR) for the task, recorded."""
    from vbert.core.params import read_job
    from vbert.pipeline.finetune import FinetuneJob, SweepState, baselines

    job = read_job(FinetuneJob, WORK / task / START / "params.yaml", pretrain_dir=pretrain, out_dir=WORK / task)
    state = SweepState.of(job)
    reference = find_cell(pretrain, "reference")
    found = baselines(job, state, state.task(reference.folder), reference)
    write_json(baselines_path(task), {"task": task, "baselines": found, "machine": machine()})


def ensure_baselines(task: str, pretrain: Path) -> None:
    if baselines_path(task).exists():
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "baselines-one", "--task", task, "--pretrain", str(pretrain)]
    if subprocess.run(command, cwd=REPO, env=env).returncode:
        raise click.ClickException(f"{task}: baselines failed")


# ---- the runs, in order, within a budget ----------------------------------------------------------------


def out_of_time(deadline: float | None, task: str, arm: str, seed: int) -> bool:
    """Past `--hours`: the run (task, arm, seed) is not started, and the log says so."""
    if deadline is None or time.monotonic() <= deadline:
        return False
    log.info("out of time: %s %s seed %d and what follows it not started", task, arm, seed)
    return True


@main.command()
@click.option("--task", "tasks", multiple=True, type=click.Choice(list(TASKS)), help="default: every task")
@click.option("--arm", "arms", multiple=True, type=click.Choice(list(ARMS)), help="default: every arm")
@click.option("--seed", "seeds", multiple=True, type=int, help=f"default: {', '.join(map(str, SEEDS))}")
@click.option("--hours", type=float, default=None, help="start no new run (pretraining or fine-tuning) after this long")
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="fine-tuning runs at a time, the cores shared out (2 on 2 cores: 1.27x one run's throughput on an AVX2 "
    "EPYC, ~1.1x on an AVX-512 one)",
)
def run(tasks: tuple[str, ...], arms: tuple[str, ...], seeds: tuple[int, ...], hours: float | None, parallel: int):
    """Every (task, arm, seed) not yet recorded under the current protocol: tasks in turn, arms in the order given
    (default: cheapest first), every seed of an arm before the next arm. Pretraining runs in this process as an arm
    needs it, fine-tuning in `--parallel` processes; records are written as runs finish."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    for task in tasks or TASKS:
        if not (REPO / TASKS[task][0] / "train.tsv").exists() or not (CORPUS / "docs.txt.gz").exists():
            raise click.ClickException(f"{TASKS[task][0]} or {CORPUS}: missing; run `make data-full` first")
    deadline = time.monotonic() + 3600 * hours if hours else None
    todo = [
        (task, arm, seed)
        for task in tasks or TASKS
        for arm in arms or ARMS
        for seed in seeds or SEEDS
        if not recorded(task, arm, seed)
    ]
    with ThreadPoolExecutor(parallel) as pool:
        running: set = set()
        for task, arm, seed in todo:
            if out_of_time(deadline, task, arm, seed):
                break
            pretrain, minutes = prepare(task, ARMS[arm][0])
            ensure_baselines(task, prepare(task, START)[0])
            while len(running) >= parallel:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            if out_of_time(deadline, task, arm, seed):  # pretraining or a free slot may have taken hours
                break
            running.add(pool.submit(finetune, task, arm, seed, pretrain, minutes, parallel))
        for future in running:
            future.result()


# ---- the report --------------------------------------------------------------------------------------------


def task_report(task: str) -> dict | None:
    """Per arm: its seeds' test F1 (mean, spread, each), mean eval F1, minutes; the chosen arm by mean eval F1 and
    its difference from the reference (paired bootstrap over the test examples); the baselines."""
    from vbert.evaluation.scores import classification_scores, positive_index
    from vbert.evaluation.significance import paired_bootstrap
    from vbert.text.tasks import read_task

    folder, positive = TASKS[task]
    splits, names = read_task(REPO / folder)
    index = {label: i for i, label in enumerate(names)}
    gold = np.array([index[label] for label in splits["test"].labels])
    pos = positive_index(names, positive or None)

    def f1(truth: np.ndarray, predicted: np.ndarray) -> float:
        return classification_scores(truth, predicted, len(names), positive=pos)["f1"]

    runs: dict[str, list[dict]] = {}
    for arm in ARMS:
        found = [recorded(task, arm, seed) for seed in SEEDS]
        if any(found):
            runs[arm] = [r for r in found if r]
    if not runs and not baselines_path(task).exists():
        return None
    arms = {}
    for arm, records in runs.items():
        test = [r["test_f1"] for r in records]
        arms[arm] = {
            "seeds": [r["seed"] for r in records],
            "test_f1": test,
            "test_f1_mean": round(float(np.mean(test)), 6),
            "test_f1_std": round(float(np.std(test)), 6),
            "eval_f1_mean": round(float(np.mean([r["eval_f1"] for r in records])), 6),
            "kept_epochs": [r["kept_epoch"] for r in records],
            "minutes": round(
                max(r["pretraining_minutes"] for r in records) + sum(r["finetune_minutes"] for r in records), 1
            ),
            "finetune_minutes_per_seed": round(float(np.mean([r["finetune_minutes"] for r in records])), 1),
            "ran_on": sorted({vector_unit(r["machine"]) for r in records}),
            "complete": len(records) == len(SEEDS),
        }
    predictions = {arm: [np.array(r["test_predictions"]) for r in records] for arm, records in runs.items()}
    if "reference" in runs:
        for arm in arms:
            if arm != "reference":
                common = sorted(set(arms[arm]["seeds"]) & set(arms["reference"]["seeds"]))
                ours, theirs = (
                    [p for r, p in zip(runs[a], predictions[a], strict=True) if r["seed"] in common]
                    for a in (arm, "reference")
                )
                found = paired_bootstrap(gold, ours, theirs, f1) if common else None
                arms[arm]["minus_reference"] = found["difference"] if found else None
                arms[arm]["minus_reference_ci95"] = found["ci95"] if found else None
    result: dict = {"task": folder, "positive_label": positive, "arms": arms}
    machines = [r["machine"] for rs in runs.values() for r in rs]
    if baselines_path(task).exists():
        recorded_baselines = json.loads(baselines_path(task).read_text())
        machines.append(recorded_baselines["machine"])
        found = recorded_baselines["baselines"]
        result["baselines"] = {
            "majority": found["majority"]["f1"],
            "tfidf_lr": found["tfidf_lr"]["test_f1"],
            "embeddings_lr": found["embeddings_lr"]["test_f1"],
        }
        best = max(("tfidf_lr", "embeddings_lr"), key=lambda b: found[b]["eval_f1"])
        result["best_baseline_by_eval"] = best
    complete = [arm for arm in arms if arms[arm]["complete"]]
    if "reference" in complete:  # an adapted arm is chosen against the reference's full seeds, never alone
        chosen = max(complete, key=lambda a: arms[a]["eval_f1_mean"])
        result["chosen_arm"] = chosen
        result["chosen_minus_reference"] = arms[chosen].get("minus_reference", 0.0)
        result["ci95"] = arms[chosen].get("minus_reference_ci95", [0.0, 0.0])
        if "baselines" in result:
            best_score = result["baselines"][result["best_baseline_by_eval"]]
            result["chosen_minus_best_baseline"] = round(arms[chosen]["test_f1_mean"] - best_score, 6)
    result["protocol"] = {arm: protocol(task, arm) for arm in arms}
    result["machines"] = sorted({json.dumps(m, sort_keys=True) for m in machines})
    result["machines"] = [json.loads(m) for m in result["machines"]]
    result["recipe"] = str(RECIPE.relative_to(REPO))
    return result


def _points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.2f}"


def chosen_sentence(result: dict) -> str:
    """Which arm the eval F1 chose, and what it gains over the reference (with its interval) and the best baseline;
    a reference chosen says whether adapted arms were complete and lost on eval, or none was complete."""
    arms, chosen = result["arms"], result["chosen_arm"]
    over_baseline = (
        f", {_points(result['chosen_minus_best_baseline'])} F1 over the best baseline by eval "
        f"({result['best_baseline_by_eval']})"
        if "chosen_minus_best_baseline" in result
        else ""
    )
    sentence = f"Chosen by mean eval F1 among the complete arms: **{chosen}**"
    if chosen != "reference":
        low, high = result["ci95"]
        return (
            f"{sentence}, {_points(result['chosen_minus_reference'])} F1 over the reference "
            f"[{_points(low)}, {_points(high)}] ({verdict((low, high))}){over_baseline}."
        )
    beaten = [arm for arm, found in arms.items() if arm != "reference" and found["complete"]]
    if not beaten:
        return f"{sentence} (no adapted arm is complete){over_baseline}."
    evals = ", ".join(f"{arm} {arms[arm]['eval_f1_mean']:.4f}" for arm in beaten)
    return (
        f"{sentence} (eval F1 {arms['reference']['eval_f1_mean']:.4f}; complete adapted arms lower on eval: {evals})"
        f"{over_baseline}. Test F1 is reported above, never used to choose."
    )


def vector_unit(machine: dict) -> str:
    """What sets a machine's fp32 training speed here, in a word: its widest vector unit (the same run took ~3x
    longer on an AVX2-only machine than on one with AVX-512)."""
    return "avx512" if "avx512f" in machine["isa"] else "avx2"


def markdown(data: dict) -> str:
    lines = ["# Does adaptation pay off?", ""]
    lines += [
        "`python benchmarks/adaptation.py run` then `report`: every arm of recipes/every-arm.yaml fine-tuned with "
        f"seeds {', '.join(map(str, SEEDS))}; test F1 (the positive class's for a binary task, else macro), the kept "
        "epoch chosen on eval. Differences from the reference are paired-bootstrap 95% intervals over the test "
        "examples, over the seeds both have. An arm with fewer seeds than that is marked (n/3) and is not chosen; "
        "no arm is chosen before the reference has all its seeds.",
        "",
    ]
    for task, result in data["tasks"].items():
        lines += [f"## {task} (`{result['task']}`)", ""]
        if result["arms"]:
            lines += [
                "| arm | seeds | test F1 mean ± std | per seed | minus reference [95%] | eval F1 | minutes | CPU |"
            ]
            lines += ["|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["No arm recorded yet."]
        for name, arm in result["arms"].items():
            low_high = arm.get("minus_reference_ci95")
            interval = f"[{_points(low_high[0])}, {_points(low_high[1])}]" if low_high else ""
            lines.append(
                f"| {name} | {len(arm['seeds'])}/{len(SEEDS)} | {arm['test_f1_mean']:.4f} ± {arm['test_f1_std']:.4f} "
                f"| {', '.join(f'{v:.4f}' for v in arm['test_f1'])} | {_points(arm.get('minus_reference'))} "
                f"{interval} | {arm['eval_f1_mean']:.4f} | {arm['minutes']} | {', '.join(arm['ran_on'])} |"
            )
        if "baselines" in result:
            lines += ["", "Baselines (test F1): " + ", ".join(f"{k} {v:.4f}" for k, v in result["baselines"].items())]
        if "chosen_arm" in result:
            lines += ["", chosen_sentence(result)]
        machines = "; ".join(f"{m['cpu']}, {m['cpus']} cores, {' '.join(m['isa'])}" for m in result["machines"])
        if "chosen_arm" not in result and result["arms"]:
            lines += ["", "No arm is chosen until the reference has all its seeds."]
        lines += ["", f"Machines: {machines}.", ""]
    return "\n".join(lines)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=RESULT, show_default=True)
def report(out: Path) -> None:
    """adaptation.json and .md from the records present."""
    tasks = {task: found for task in TASKS if (found := task_report(task))}
    if not tasks:
        raise click.ClickException(f"no records under {RECORDS}: run `python benchmarks/adaptation.py run` first")
    click.echo(write_result(out, {"tasks": tasks}, markdown))


if __name__ == "__main__":
    main()
