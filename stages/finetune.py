"""Stage finetune: fine-tune every pretraining checkpoint on the labelled task; keep the best by eval F1."""

from pathlib import Path

import click

from vbert.atomic import write_csv, write_json
from vbert.cli import stage
from vbert.finetuning import FinetuneJob, run_sweep
from vbert.params import load_section


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--pretrain", default="models/pretrain", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models/finetune", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/finetune.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plots", default="plots/finetune.csv", show_default=True, type=click.Path(path_type=Path))
@click.option("--table", default="reports/finetune.csv", show_default=True, type=click.Path(path_type=Path))
@stage("finetune")
def main(params_file: str, pretrain: Path, out: Path, metrics: Path, plots: Path, table: Path) -> None:
    p = load_section("finetune", params_file)
    job = FinetuneJob(
        pretrain_dir=pretrain,
        task_dir=Path(p["task_dir"]),
        out_dir=out,
        max_seq_length=p.integer("max_seq_length", 8, 512),
        epochs=p.integer("epochs", 1),
        patience=p.integer("patience", 1),
        learning_rate=p.probability("learning_rate", open_low=True),
        train_batch_size=p.integer("train_batch_size", 1),
        eval_batch_size=p.integer("eval_batch_size", 1),
        warmup_proportion=p.probability("warmup_proportion", open_high=True),
        positive_label=p.get("positive_label") or None,
        jobs=p.integer("jobs", 1),
        jit_compile=p.boolean("jit_compile"),
        random_seed=p.integer("random_seed", 0),
    )
    results = run_sweep(job)
    write_csv(table, results["rows"], list(results["rows"][0]))
    write_csv(plots, results["summary"], list(results["summary"][0]))
    write_json(metrics, results["metrics"])


if __name__ == "__main__":
    main()
