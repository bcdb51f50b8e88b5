"""Does a distilled student keep its teacher's accuracy? The finetune and distill stages on the full pkg_section task.

    make demo data-full                          # once: models/pretrain (its reference) and the full task
    python benchmarks/distillation.py            # teacher, then students over seeds; the result file
    python benchmarks/distillation.py --set distill.student_layers=4 --teacher models/full-teacher

The teacher is MiniLM (6 layers, no domain pretraining: `finetune.checkpoints: reference`) fine-tuned on the full
task; each student keeps 3 of its layers and learns its answers on the train split plus unlabelled texts from the
docs corpus. Everything else is params.yaml as committed, overridden by OVERRIDES and then by `--set` (any
`section.key=value`, the value read as YAML). The stages run as the pipeline runs them (`python -m stages.<name>`) in a
scratch folder; the result, with the overrides, goes to `--out`. `--teacher DIR` reuses a teacher: when DIR holds
one (a finetune stage's `best` folder and its metrics), fine-tuning is skipped; when it does not, the new teacher is
kept there for the next run.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402

OVERRIDES = {
    "finetune": {
        "checkpoints": "reference",
        "max_seq_length": 128,
        "seeds": [1],
        "epochs": 1,
        "learning_rate": 1.0e-4,  # with a one-epoch budget 1e-4 did better on this task (params.yaml)
    },
    "distill": {"seeds": [1, 2, 3], "epochs": 2, "unlabelled_texts": 5000},
}


def run_stage(name: str, *arguments: str) -> float:
    """`python -m stages.<name> ARGUMENTS` in the repository; its seconds. Stops on failure with its output."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", f"stages.{name}", *arguments], cwd=REPO)
    if done.returncode:
        raise click.ClickException(f"the {name} stage failed (exit {done.returncode})")
    return round(time.perf_counter() - started, 1)


def apply_settings(overrides: dict, settings: tuple[str, ...]) -> dict:
    """OVERRIDES with every `section.key=value` of SETTINGS applied (values read as YAML)."""
    merged = copy.deepcopy(overrides)
    for setting in settings:
        name, sep, value = setting.partition("=")
        section, dot, key = name.partition(".")
        if not (sep and dot and section and key):
            raise click.BadParameter(f"{setting!r}: expected section.key=value", param_hint="--set")
        merged.setdefault(section, {})[key] = yaml.safe_load(value)
    return merged


LAYER_LOSSES = {"hidden_state_weight": "hidden states (TinyBERT)", "attention_weight": "last-layer attention (MiniLM)"}


def objective(result: dict) -> str:
    """The student's loss as run: soft targets and labels, plus any intermediate-layer loss (--set distill.*)."""
    distill = result["overrides"]["distill"]
    parts = [f"{name} x {distill[key]}" for key, name in LAYER_LOSSES.items() if distill.get(key)]
    losses = result["distill"].get("student_train_losses", {})
    kept = ", ".join(f"{name.removeprefix('train_')} {value:.4f}" for name, value in losses.items())
    return (
        "Objective: soft targets and labels"
        + (f" + {' + '.join(parts)}" if parts else " alone")
        + (f"; the kept epochs' mean training losses: {kept}." if kept else ".")
    )


def markdown(result: dict) -> str:
    d, t = result["distill"], result["teacher"]
    student = d["student_test_f1"]
    diff = d["student_minus_teacher"]
    task = result.get("task", "pkg_section")
    return "\n".join(
        [
            f"# Distillation on {task} ({result['machine']['cpu']}, {result['machine']['cpus']} cores)",
            "",
            "`python benchmarks/distillation.py`: the teacher (MiniLM, 6 layers, fine-tuned on the full task, "
            f"max_seq_length {result['overrides']['finetune']['max_seq_length']}) and students of "
            f"{d['student_layers']} layers (its layers {d['layers_kept']}), seeds {d['seeds']}, trained on the train "
            f"split, {d['unlabelled_texts']:,} unlabelled docs-corpus texts (~{d['words_per_unlabelled_text']} "
            f"words each) and {d.get('augmented_texts', 0):,} texts made from the train split, for "
            f"{result['overrides']['distill']['epochs']} epochs. {objective(result)}",
            "",
            "| model | layers | parameters | GFLOP per sequence (test lengths) | test F1 |",
            "|---|---:|---:|---:|---|",
            f"| TF-IDF + LR | | | | {t['baselines']['tfidf_lr']['test_f1']:.4f} |",
            f"| teacher | {d['teacher_layers']} | {d['teacher_parameters']:,} | "
            f"{d['teacher_flops_per_sequence'] / 1e9:.2f} | {d['teacher_test_f1']:.4f} |",
            f"| student | {d['student_layers']} | {d['student_parameters']:,} | "
            f"{d['student_flops_per_sequence'] / 1e9:.2f} | {student['mean']:.4f} ± {student['std']:.4f} "
            f"({', '.join(f'{v:.4f}' for v in student['values'])}) |",
            "",
            f"Student minus teacher: {100 * diff['difference']:+.2f} F1 points (95% paired-bootstrap interval "
            f"{100 * diff['ci95'][0]:+.2f} .. {100 * diff['ci95'][1]:+.2f}); target: within 1 point. FLOPs "
            f"{d['flops_ratio']}x fewer. Minutes: teacher {result['seconds']['finetune'] / 60:.1f}, students "
            f"{result['seconds']['distill'] / 60:.1f}. Mean eval F1 (what `freeze.ship: auto` decides on): student "
            f"{d['student_eval_f1']['mean']:.4f}, teacher {d['teacher_eval_f1']:.4f}.",
            "",
        ]
    )


def fine_tune_teacher(params: tuple[str, str], pretrain: Path, work: Path, teacher: Path) -> None:
    """Run the finetune stage; keep its `best` model and metrics (with the seconds it took) in TEACHER."""
    seconds = run_stage(
        "finetune",
        *params,
        *("--pretrain", str(pretrain), "--out", str(work / "finetune"), "--metrics", str(work / "f.json")),
        *("--plots", str(work / "f.csv"), "--table", str(work / "t.csv")),
    )
    teacher.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(teacher / "best", ignore_errors=True)
    shutil.copytree(work / "finetune" / "best", teacher / "best")
    metrics = json.loads((work / "f.json").read_text()) | {"seconds": seconds}
    (teacher / "metrics.json").write_text(json.dumps(metrics, indent=2))


@click.command()
@click.option("--pretrain", type=click.Path(path_type=Path), default=REPO / "models/pretrain", show_default=True)
@click.option("--task-dir", type=click.Path(path_type=Path), default=REPO / "data/full/pkg_section", show_default=True)
@click.option("--corpus", type=click.Path(path_type=Path), default=REPO / "data/full/docs.txt.gz", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/distillation.json")
@click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one param (repeatable).")
@click.option(
    "--teacher",
    "teacher_dir",
    type=click.Path(path_type=Path),
    help="Reuse the teacher kept here, or keep the new one here. The teacher's params must not change between runs.",
)
def main(
    pretrain: Path, task_dir: Path, corpus: Path, out: Path, settings: tuple[str, ...], teacher_dir: Path | None
) -> None:
    """Fine-tune the teacher (or reuse one), distil students over seeds, write the comparison."""
    # a pretrain stage's folder: its reference cell is `reference/`, or its first checkpoint when the vocabulary
    # kept every token (vbert.model.checkpoints.pretraining_cells)
    for path, how in (
        (pretrain / "settings.json", "make demo"),
        (task_dir, "make data-full"),
        (corpus, "make data-full"),
    ):
        if not path.exists():
            raise click.UsageError(f"{path}: missing; run `{how}` first")
    overrides = apply_settings(OVERRIDES, settings)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    params["finetune"]["task_dir"] = str(task_dir)
    with tempfile.TemporaryDirectory(prefix="vbert-distillation-") as work:
        work = Path(work)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        p = ("--params", str(work / "params.yaml"))
        teacher = teacher_dir or work / "teacher"
        if (teacher / "metrics.json").exists():
            print(f"reusing the teacher in {teacher} (its fine-tuning minutes are from the run that made it)")
        else:
            fine_tune_teacher(p, pretrain, work, teacher)
        distill_seconds = run_stage(
            "distill",
            *p,
            *("--teacher", str(teacher / "best"), "--corpus", str(corpus), "--task-dir", str(task_dir)),
            *("--out", str(work / "distill"), "--metrics", str(work / "d.json")),
        )
        teacher_result = json.loads((teacher / "metrics.json").read_text())
        result = {
            "task": task_dir.name,
            "overrides": overrides,
            "teacher": teacher_result,
            "distill": json.loads((work / "d.json").read_text()),
            "seconds": {"finetune": teacher_result["seconds"], "distill": distill_seconds},
            "machine": machine(),
        }
    print(write_result(out, result, markdown))


if __name__ == "__main__":
    main()
