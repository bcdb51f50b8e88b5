"""Stage finetune: fine-tune pretraining checkpoints on the labelled task (several seeds), against baselines."""

from pathlib import Path

import click

from vbert.core.atomic import write_csv, write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.pipeline.finetune import CHECKPOINTS, FinetuneJob, run_sweep


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--pretrain", required=True, type=click.Path(path_type=Path), help="the pretrain stage's checkpoints")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="cells of the sweep and best/")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--plots", required=True, type=click.Path(path_type=Path), help="each checkpoint's best epoch")
@click.option("--table", required=True, type=click.Path(path_type=Path), help="every (checkpoint, epoch)")
@stage("finetune")
def main(params_file: str, pretrain: Path, out: Path, metrics: Path, plots: Path, table: Path) -> None:
    with load_section("finetune", params_file) as p:
        job = FinetuneJob(
            pretrain_dir=pretrain,
            task_dir=Path(p.text("task_dir", empty=False)),
            out_dir=out,
            checkpoints=p.choice("checkpoints", CHECKPOINTS),
            max_seq_length=p.integer("max_seq_length", min=8, max=512),
            seeds=p.integers("seeds", min=0),
            epochs=p.integer("epochs", min=1),
            patience=p.integer("patience", min=1),
            learning_rate=p.number("learning_rate", min=0, max=1, min_open=True),
            train_batch_size=p.integer("train_batch_size", min=1),
            eval_batch_size=p.integer("eval_batch_size", min=1),
            warmup_proportion=p.probability("warmup_proportion", max_open=True),
            positive_label=p.text("positive_label") or None,
            mixed_precision=p.choice("mixed_precision", PRECISIONS),
            jobs=p.integer("jobs", min=1),
            jit_compile=p.boolean("jit_compile"),
        )
        if len(set(job.seeds)) != len(job.seeds):
            raise p.error("seeds", "must not repeat a seed")
    results = run_sweep(job)
    write_csv(table, results["rows"], list(results["rows"][0]))
    write_csv(plots, results["summary"], list(results["summary"][0]))
    write_json(metrics, results["metrics"])


if __name__ == "__main__":
    main()
