"""What a pipeline run produced, in a few lines a person reads at a glance (the end of `make demo`).

    python -m vbert.tools.summary [metrics folder]     # default: metrics/

Only the stages that have metrics, and whose outputs DVC calls up to date, are summarised: after a run of part of
the pipeline (`make adapt` stops at finetune) the later stages' metrics are an earlier run's, and a line says so.
`dvc metrics show` has every number.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vbert.core.errors import InputError

STAGES = ("vnlp", "vocab", "pretrain", "finetune", "distill", "freeze", "ir")  # the summarised, in pipeline order


def verdict(ci95) -> str:
    """What a difference's 95% interval says, in words: better or worse beyond noise, or within it."""
    low, high = ci95
    if low > 0:
        return "better beyond noise"
    if high < 0:
        return "worse beyond noise"
    return "within noise"


def stale_stages(repo: Path = Path(".")) -> set[str]:
    """The stages whose outputs are out of date by `dvc status` (their inputs or params changed since they ran);
    empty when DVC cannot tell (not a DVC project, DVC missing or failing)."""
    dvc = Path(sys.executable).parent / "dvc"
    try:
        done = subprocess.run([str(dvc), "status", "--json"], cwd=repo, capture_output=True, text=True, timeout=300)
        return set(json.loads(done.stdout)) if done.returncode == 0 and done.stdout.strip() else set()
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return set()


def _loader(folder: Path, stale: set[str]):
    def load(stage: str) -> dict | None:
        path = folder / f"{stage}.json"
        if stage in stale or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not a metrics file ({err}); `dvc repro {stage}` writes it anew") from err

    return load


def _f1(value: float, spread: float | None = None) -> str:
    return f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")


def lines(folder: Path, stale: set[str] = frozenset()) -> list[str]:
    """The summary of the metrics in `folder`, one finding per line; `stale` stages' metrics are left out, named."""
    out = []
    load = _loader(folder, stale)
    if vnlp := load("vnlp"):
        out.append(
            f"corpus       {vnlp['documents']:,} documents, {vnlp['words']:,} words; "
            f"{vnlp['corrections']} spelling fixes, {vnlp['splits']} compound splits"
        )
    if vocab := load("vocab"):
        out.append(
            f"vocabulary   {vocab['variant']}: {vocab['tokens_added']:,} domain tokens added; word pieces per word "
            f"{vocab['pieces_per_word_before']} -> {vocab['pieces_per_word_after']}"
        )
    if pretrain := load("pretrain"):
        precision = pretrain.get("mixed_precision", "fp32")
        if pretrain["final_step"]:
            out.append(
                f"pretraining  {pretrain['final_step']} steps ({precision}): masked-LM accuracy "
                f"{pretrain['initial']['masked_lm_accuracy']:.3f} -> {pretrain['masked_lm_accuracy']:.3f}"
            )
        else:
            warmed = pretrain.get("head_warmup_steps", 0)
            how = f", its masked-LM head warmed up for {warmed} steps ({precision})" if warmed else ""
            out.append(
                f"pretraining  none: the starting model{how}: masked-LM accuracy {pretrain['masked_lm_accuracy']:.3f}"
            )
    if finetune := load("finetune"):
        seeds = len(finetune["seeds"])
        score = _f1(finetune["test_f1"], finetune["test_f1_std"] if seeds > 1 else None)
        out.append(f"fine-tuning  best {finetune['best_cell']}: test F1 {score} over {seeds} seed{'s' * (seeds > 1)}")
        baselines = finetune["baselines"]
        reference = finetune["no_domain_pretraining"]
        frozen = baselines.get("embeddings_lr")
        out.append(
            f"  against    no domain pretraining {_f1(reference['test_f1_mean'])}, "
            + (f"frozen embeddings + LR {_f1(frozen['test_f1'])}, " if frozen else "")
            + f"TF-IDF + LR {_f1(baselines['tfidf_lr']['test_f1'])}, majority class {_f1(baselines['majority']['f1'])}"
        )
        if over := finetune.get("chosen_over_best_baseline"):
            out.append(
                f"  chosen     by eval F1: {finetune['best_cell']}, {over['difference']:+.3f} F1 over the best "
                f"baseline by eval ({over['baseline']}, {_f1(over['baseline_test_f1'])})"
            )
        if difference := finetune.get("difference"):
            low, high = difference["ci95"]
            out.append(
                f"  adapted    {finetune['domain_pretraining']['cell']} minus the reference: "
                f"{difference['difference']:+.3f} F1 (95% interval {low:+.3f} .. {high:+.3f}: {verdict((low, high))})"
            )
    if distill := load("distill"):
        student, seeds = distill["student_test_f1"], len(distill["seeds"])
        shipped = (load("freeze") or {}).get("shipped", "?")
        score = _f1(student["mean"], student["std"] if seeds > 1 else None)
        out.append(
            f"distilled    {distill['student_layers']} of {distill['teacher_layers']} layers: test F1 "
            f"{score} over {seeds} seed{'s' * (seeds > 1)} (teacher "
            f"{_f1(distill['teacher_test_f1'])}), {distill['flops_ratio']}x fewer FLOPs; shipped: {shipped}"
        )
    if ir := load("ir"):
        chosen = ir["variants"][ir["chosen"]]
        out.append(
            f"serving      OpenVINO {ir['chosen']}: {chosen['ms_per_request']:.1f} ms per request, test F1 "
            f"{chosen['test_f1']:.3f} (TensorFlow {ir['tensorflow_test_f1']:.3f})"
        )
        name = (load("freeze") or {}).get("model_name", "vbert")
        query = f'curl -d \'{{"texts": ["..."]}}\' localhost:8501/v1/models/{name}:classify_text'
        out.append(f"serve it     make serve-openvino, then: {query}")
    if left := [stage for stage in STAGES if stage in stale and (folder / f"{stage}.json").exists()]:
        out.append(
            f"not re-run   {', '.join(left)}: their inputs changed since their metrics were written "
            f"(`dvc repro {left[-1]}` brings them up to date)"
        )
    return out


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("metrics")
    try:
        found = lines(folder, stale_stages())
    except InputError as err:
        print(f"summary: {err}", file=sys.stderr)
        return 2
    print("\n".join(found) if found else f"{folder}: no metrics yet; run `make demo`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
