"""Does domain pretraining pay off? The pipeline on the public pkg_section task with the docs corpus, one command.

    make data-full                                   # once: the full corpora and task under DVC
    python benchmarks/domain_adaptation.py           # `dvc exp run --temp` with OVERRIDES, then the result file

The experiment runs in a temporary copy of the repository (your workspace and params.yaml stay as they are), from
scratch, and its time is measured from `dvc exp run` to the finetune stage's metrics. The result, with the exact
overrides, goes to benchmarks/results/domain_adaptation.json; the experiment stays in `dvc exp show`.
"""

from __future__ import annotations

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
from vbert.tools.summary import verdict  # noqa: E402

OVERRIDES = {  # the recipe: everything else is params.yaml as committed
    "vnlp.input_dir": "data/full",  # the 33 MB docs corpus
    "finetune.task_dir": "data/full/pkg_section",
    "vnlp.task_text_repeat": 10,  # task-adaptive: the task's train texts join the corpus, 10 times
    "vocab": "default",  # new tokens start as the mean of their pieces: too few steps to learn them here
    "pretrain.next_sentence": "false",  # masked LM only (RoBERTa's finding; the pooler keeps MiniLM's weights)
    # pretraining: 800 updates of 32 at MSL 128 (25,600 examples), no MSL-512 phase
    "msl512": "false",
    "pretrain.num_train_steps_msl512": 0,
    "pretrain.msl512_from_steps": "[]",
    "pretrain.train_batch_size": 32,
    "pretrain.learning_rate": "1e-4",
    "pretrain.num_train_steps": 800,
    "pretrain.num_warmup_steps": 80,
    "pretrain.head_warmup_steps": 100,
    "pretrain.save_checkpoints_steps": 800,
    "pretrain.eval_batches": 10,
    # fine-tuning: the reference and the last checkpoint, 3 seeds each, 1 epoch at MSL 128
    "finetune.checkpoints": "last",
    "finetune.max_seq_length": 128,
    "finetune.seeds": "[1,2,3]",
    "finetune.epochs": 1,
    "finetune.learning_rate": "1e-4",
}


def dvc(*args: str) -> str:
    bin_dir = str(Path(sys.executable).parent)  # the stages' `python` is this environment's, as under `make`
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([f"{bin_dir}/dvc", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise click.ClickException(f"dvc {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def experiment_metrics(name: str) -> dict:
    """The finetune metrics of experiment `name`, read from its commit (`dvc exp show` leaves out list values such
    as the seeds and the confidence interval)."""
    for commit in json.loads(dvc("exp", "show", "--json", "--no-fetch")):
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                if revision.get("name") == name:
                    shown = subprocess.run(
                        ["git", "show", f"{revision['rev']}:metrics/finetune.json"],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    return json.loads(shown.stdout)
    raise click.ClickException(f"no experiment named {name} in `dvc exp show`")


def result(metrics: dict, minutes: float) -> dict:
    return {
        "task": OVERRIDES["finetune.task_dir"],
        "corpus": OVERRIDES["vnlp.input_dir"],
        "seeds": metrics["seeds"],
        "minutes": round(minutes, 1),
        "tfidf_lr": {"test_f1": metrics["baselines"]["tfidf_lr"]["test_f1"]},
        "majority": {"test_f1": metrics["baselines"]["majority"]["f1"]},
        "no_domain_pretraining": {
            "test_f1_mean": metrics["no_domain_pretraining"]["test_f1_mean"],
            "test_f1_std": metrics["no_domain_pretraining"]["test_f1_std"],
            "test_f1": metrics["no_domain_pretraining"]["test_f1"],
        },
        "domain_pretraining": {
            "cell": metrics["domain_pretraining"]["cell"],
            "test_f1_mean": metrics["domain_pretraining"]["test_f1_mean"],
            "test_f1_std": metrics["domain_pretraining"]["test_f1_std"],
            "test_f1": metrics["domain_pretraining"]["test_f1"],
        },
        "difference": metrics["difference"]["difference"],
        "difference_ci95": metrics["difference"]["ci95"],
        "beyond_noise": metrics["difference"]["beyond_noise"],
        "params": OVERRIDES,
        "machine": machine(),
    }


def _f1(scores: dict) -> str:
    return f"{scores['test_f1_mean']:.4f} ± {scores['test_f1_std']:.4f}"


def markdown(data: dict) -> str:
    low, high = data["difference_ci95"]
    runs = " / ".join(f"{f:.4f}" for f in data["domain_pretraining"]["test_f1"])
    reference = " / ".join(f"{f:.4f}" for f in data["no_domain_pretraining"]["test_f1"])
    settings = " ".join(f"-S {k}={v}" for k, v in data["params"].items())
    return "\n".join(
        [
            f"# Does domain pretraining pay off? ({data['machine']['cpu']}, {data['machine']['cpus']} cores)",
            "",
            f"`python benchmarks/domain_adaptation.py`: task `{data['task']}`, corpus `{data['corpus']}`, "
            f"{data['minutes']:.0f} minutes from `dvc exp run` to metrics, seeds {data['seeds']}.",
            "",
            "| model | test F1 (mean ± std over seeds) | per seed |",
            "|---|---|---|",
            f"| majority class | {data['majority']['test_f1']:.4f} | |",
            f"| TF-IDF + logistic regression (C, n-grams chosen on eval) | {data['tfidf_lr']['test_f1']:.4f} | |",
            f"| MiniLM, default vocabulary, no domain pretraining "
            f"| {_f1(data['no_domain_pretraining'])} | {reference} |",
            f"| MiniLM after domain pretraining ({data['domain_pretraining']['cell']}) "
            f"| {_f1(data['domain_pretraining'])} | {runs} |",
            "",
            f"Difference: **{100 * data['difference']:+.2f} F1 points**, paired bootstrap 95% CI over test examples "
            f"[{100 * low:+.2f}, {100 * high:+.2f}]: {verdict((low, high))}.",
            "",
            f"Overrides of params.yaml: `{settings}`",
            "",
        ]
    )


@click.command()
@click.option("--name", default="domain-adaptation", show_default=True, help="the experiment's name")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/domain_adaptation.json")
@click.option("--render-only", is_flag=True, help="only write the markdown again from the JSON result at --out")
@click.option(
    "--collect-minutes",
    type=float,
    help="do not run: collect the finished experiment --name, which took this many minutes",
)
def main(name: str, out: Path, render_only: bool, collect_minutes: float | None) -> None:
    if render_only:
        write_text(out.with_suffix(".md"), markdown(json.loads(out.read_text())))
        return
    if collect_minutes is not None:
        click.echo(write_result(out, result(experiment_metrics(name), collect_minutes), markdown))
        return
    if not (REPO / "data/full/pkg_section/train.tsv").exists():
        raise click.ClickException("data/full has no pkg_section task: run `make data-full` first")
    settings = [item for key, value in OVERRIDES.items() for item in ("-S", f"{key}={value}")]
    started = time.perf_counter()
    dvc("exp", "run", "--temp", "--force", "--name", name, *settings, "finetune")
    minutes = (time.perf_counter() - started) / 60
    data = result(experiment_metrics(name), minutes)
    click.echo(write_result(out, data, markdown))


if __name__ == "__main__":
    main()
