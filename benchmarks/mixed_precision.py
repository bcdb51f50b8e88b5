"""Benchmark: does bf16 pretraining learn as fp32 does? Eval loss curves of the pretrain stage, fp32 against bf16.

Three runs of the real pretrain stage on the demo's TFRecords and vocabulary (run `make demo` first), MiniLM from its
packaged weights, everything as params.yaml says except: `--steps` updates, a checkpoint (and its eval on
`--eval-batches` held-out batches) every `--every` steps, no MSL-512 phase. fp32 with the pipeline's seed, fp32 with
another seed (the noise: what a different data order and masking alone changes), and bf16 with the pipeline's seed.
bf16 learns as fp32 does when its distance to fp32 at each checkpoint is within the two fp32 runs' distance.

    python benchmarks/mixed_precision.py            # ~10 min on 2 cores; writes benchmarks/results/mixed_precision.*
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402

log = logging.getLogger("benchmark")

RUNS = {"fp32": ("fp32", 0), "fp32-other-seed": ("fp32", 1), "bf16": ("bf16", 0)}  # name: (precision, seed offset)
METRICS = ("masked_lm_loss", "masked_lm_accuracy")


def pretrain(name: str, precision: str, seed: int, steps: int, every: int, eval_batches: int, work: Path) -> dict:
    """One run of the pretrain stage; returns its eval rows and its minutes."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["pretrain"].update(
        mixed_precision=precision,
        random_seed=seed,
        num_train_steps=steps,
        num_warmup_steps=max(1, steps // 10),
        save_checkpoints_steps=every,
        num_train_steps_msl512=0,
        msl512_from_steps=[],
        eval_batches=eval_batches,
    )
    run = work / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    command = [sys.executable, "-m", "stages.pretrain", "--params", str(run / "params.yaml")]
    command += ["--tfrecords", str(REPO / "data/tfrecords"), "--vocab", str(REPO / "models/vocab")]
    command += ["--out", str(run / "out"), "--metrics", str(run / "m.json"), "--plots", str(run / "plot.csv")]
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    with (run / "plot.csv").open() as rows:
        curve = [{"step": int(r["total_step"]), **{m: float(r[m]) for m in METRICS}} for r in csv.DictReader(rows)]
    minutes = round((time.monotonic() - started) / 60, 1)
    return {"precision": precision, "seed": seed, "minutes": minutes, "curve": curve}


def compare(runs: dict) -> list[dict]:
    """Per checkpoint: each run's loss, bf16's distance to fp32 and the two fp32 runs' distance (the noise)."""
    rows = []
    for a, b, c in zip(*(runs[name]["curve"] for name in RUNS), strict=True):
        losses = {f"{name}_loss": run["masked_lm_loss"] for name, run in zip(RUNS, (a, b, c), strict=True)}
        row = {"step": a["step"], **losses}
        row["bf16_vs_fp32"] = round(abs(c["masked_lm_loss"] - a["masked_lm_loss"]), 4)
        row["fp32_seed_noise"] = round(abs(b["masked_lm_loss"] - a["masked_lm_loss"]), 4)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    lines = [
        f"# bf16 against fp32 pretraining ({results['machine']['cpu']})",
        "",
        "`python benchmarks/mixed_precision.py`: the pretrain stage on the demo's data, MiniLM, eval masked-LM loss "
        f"on {results['eval_batches']} held-out batches at each checkpoint. Minutes per run: "
        + ", ".join(f"{name} {run['minutes']}" for name, run in results["runs"].items())
        + ".",
        "",
        "| step | fp32 | fp32, other seed | bf16 | bf16 − fp32 | fp32 seed noise |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["comparison"]:
        lines.append(
            f"| {r['step']} | {r['fp32_loss']:.4f} | {r['fp32-other-seed_loss']:.4f} | {r['bf16_loss']:.4f} "
            f"| {r['bf16_vs_fp32']:.4f} | {r['fp32_seed_noise']:.4f} |"
        )
    lines += ["", results["verdict"], ""]
    return "\n".join(lines)


@click.command()
@click.option("--steps", default=120, show_default=True, help="pretraining updates per run")
@click.option("--every", default=20, show_default=True, help="a checkpoint and its eval every this many steps")
@click.option("--eval-batches", default=8, show_default=True)
@click.option("--work", type=click.Path(path_type=Path), default=Path("/tmp/vbert-mixed-precision"))
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/mixed_precision.json")
def main(steps: int, every: int, eval_batches: int, work: Path, out: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (REPO / "data/tfrecords").is_dir():
        raise click.UsageError("data/tfrecords is missing: run `make demo` first")
    seed = yaml.safe_load((REPO / "params.yaml").read_text())["pretrain"]["random_seed"]
    runs = {
        name: pretrain(name, precision, seed + offset, steps, every, eval_batches, work)
        for name, (precision, offset) in RUNS.items()
    }
    comparison = compare(runs)
    trained = [r for r in comparison if r["step"] > 0]
    within = sum(r["bf16_vs_fp32"] <= max(r["fp32_seed_noise"], 1e-3) for r in trained)
    verdict = (
        f"bf16's eval loss is within the fp32 seed noise at {within} of {len(trained)} trained checkpoints; "
        f"mean |bf16 − fp32| {sum(r['bf16_vs_fp32'] for r in trained) / len(trained):.4f}, "
        f"mean fp32 seed noise {sum(r['fp32_seed_noise'] for r in trained) / len(trained):.4f}."
    )
    results = {
        "machine": machine(),
        "steps": steps,
        "every": every,
        "eval_batches": eval_batches,
        "runs": runs,
        "comparison": comparison,
        "verdict": verdict,
    }
    click.echo(write_result(out, results, markdown))


if __name__ == "__main__":
    main()
