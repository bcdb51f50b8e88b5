"""Stage distill: a smaller student (fewer of the teacher's layers) learns the fine-tuned teacher's answers on the
task's train split, unlabelled in-domain texts and texts made from the train split."""

from pathlib import Path

import click

from vbert.core.atomic import write_json
from vbert.core.cli import stage
from vbert.core.params import load_section
from vbert.model.precision import SETTINGS as PRECISIONS
from vbert.pipeline.distill import DistillJob, distill


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--teacher", required=True, type=click.Path(path_type=Path), help="the finetune stage's best/ folder")
@click.option("--corpus", required=True, type=click.Path(path_type=Path), help="the vnlp stage's corpus.txt")
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="seeds/ and best/ (the student)")
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@stage("distill")
def main(params_file: str, teacher: Path, corpus: Path, task_dir: Path, out: Path, metrics: Path) -> None:
    with load_section("distill", params_file) as p:
        job = DistillJob(
            teacher_dir=teacher,
            corpus=corpus,
            task_dir=task_dir,
            out_dir=out,
            student_layers=p.integer("student_layers", min=1),
            temperature=p.number("temperature", min=0, min_open=True),
            soft_weight=p.probability("soft_weight"),
            unlabelled_texts=p.integer("unlabelled_texts", min=0),
            augmented_texts=p.integer("augmented_texts", min=0),
            seeds=p.integers("seeds", min=0),
            epochs=p.integer("epochs", min=1),
            learning_rate=p.number("learning_rate", min=0, max=1, min_open=True),
            train_batch_size=p.integer("train_batch_size", min=1),
            eval_batch_size=p.integer("eval_batch_size", min=1),
            warmup_proportion=p.probability("warmup_proportion", max_open=True),
            mixed_precision=p.choice("mixed_precision", PRECISIONS),
        )
        if len(set(job.seeds)) != len(job.seeds):
            raise p.error("seeds", "must not repeat a seed")
    write_json(metrics, distill(job))


if __name__ == "__main__":
    main()
