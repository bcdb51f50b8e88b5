"""Stage bench: the paper's Table 3 per backend and request batch, the server under load, the targets."""

import logging
import tempfile
from pathlib import Path

import click

from vbert.atomic import write_csv, write_json, write_text
from vbert.cli import stage
from vbert.params import load_section

log = logging.getLogger("vbert.bench")


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--serving", default="models/serving", show_default=True, type=click.Path(path_type=Path))
@click.option("--ir", "ir_dir", default="models/ir", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--bert-config",
    default="models/finetune/best/bert_config.json",
    show_default=True,
    type=click.Path(path_type=Path),
    help="the fine-tuned model's config (for FLOPs)",
)
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="the finetune task (test.tsv)")
@click.option("--report", default="reports/bench.md", show_default=True, type=click.Path(path_type=Path))
@click.option("--results", default="reports/bench.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/bench.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plots", default="plots/bench.csv", show_default=True, type=click.Path(path_type=Path))
@click.option("--load-plots", default="plots/bench_load.csv", show_default=True, type=click.Path(path_type=Path))
@stage("bench")
def main(params_file, serving, ir_dir, bert_config, task_dir, report, results, metrics, plots, load_plots) -> None:
    from vbert.bench import report as reporting
    from vbert.bench.models import MODELS
    from vbert.bench.run import BenchJob, check_inputs, run_bench

    p = load_section("bench", params_file)
    with tempfile.TemporaryDirectory(prefix="vbert-bench-") as work:
        job = BenchJob(
            serving_dir=serving / str(p["model_name"]),
            ir_dir=ir_dir,
            bert_config=bert_config,
            test_tsv=task_dir / "test.tsv",
            work_dir=Path(work),
            models=p.choices("models", MODELS),
            batch_sizes=p.integers("batch_sizes"),
            requests=p.integer("requests", 3),
            large_batch_requests=p.integer("large_batch_requests", 3),
            seq_length=p.integer("seq_length", 8, 512),
            clients=p.integers("clients"),
            load_seconds=p.number("load_seconds", 1),
            soak_seconds=p.number("soak_seconds", 1),
            naive=p.boolean("naive"),
            tfserving_rest_url=str(p["tfserving_rest_url"] or ""),
            tfserving_grpc_target=str(p["tfserving_grpc_target"] or ""),
        )
        check_inputs(job)
        measured = run_bench(job)
    goals = reporting.targets(measured)
    cells, load = reporting.plot_rows(measured)
    write_json(results, measured)
    write_json(metrics, reporting.metrics(measured, goals))
    write_csv(plots, cells, list(cells[0]))
    write_csv(load_plots, load, list(load[0]))
    write_text(report, reporting.markdown(measured, goals))
    for key, goal in goals.items():
        log.info("%s: %s (%s) %s", key, goal["value"], goal["target"], "met" if goal["met"] else "NOT MET")


if __name__ == "__main__":
    main()
