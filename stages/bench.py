"""Stage bench: the paper's Table 3 per backend and request batch, the server under load, the targets."""

import logging
import tempfile
from pathlib import Path

import click

from vbert.core.atomic import write_csv, write_json, write_text
from vbert.core.cli import stage
from vbert.core.params import load_section

log = logging.getLogger("vbert.bench")


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--model", required=True, type=click.Path(path_type=Path), help="the freeze stage's <base>/<model_name>")
@click.option(
    "--teacher", required=True, type=click.Path(path_type=Path), help="the freeze stage's teacher <base>/<model_name>"
)
@click.option("--ir", "ir_dir", required=True, type=click.Path(path_type=Path), help="the ir stage's folder")
@click.option("--task-dir", required=True, type=click.Path(path_type=Path), help="real texts: the task's test split")
@click.option("--report", required=True, type=click.Path(path_type=Path))
@click.option("--results", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--plots", required=True, type=click.Path(path_type=Path))
@click.option("--load-plots", required=True, type=click.Path(path_type=Path))
@stage("bench")
def main(params_file, model, teacher, ir_dir, task_dir, report, results, metrics, plots, load_plots) -> None:
    from vbert.bench import report as reporting
    from vbert.bench.models import MODELS
    from vbert.pipeline.bench import BenchJob, check_inputs, run_bench

    with tempfile.TemporaryDirectory(prefix="vbert-bench-") as work:
        with load_section("bench", params_file) as p:
            job = BenchJob(
                serving_dir=model,
                teacher_dir=teacher,
                ir_dir=ir_dir,
                task_dir=task_dir,
                work_dir=Path(work),
                models=p.choices("models", MODELS),
                batch_sizes=p.integers("batch_sizes", min=1),
                requests=p.integer("requests", min=3),
                large_batch_requests=p.integer("large_batch_requests", min=3),
                seq_length=p.integer("seq_length", min=8, max=512),
                clients=p.integers("clients", min=1),
                load_seconds=p.number("load_seconds", min=1),
                soak_seconds=p.number("soak_seconds", min=1),
                naive=p.boolean("naive"),
                tfserving_rest_url=p.text("tfserving_rest_url"),
                tfserving_grpc_target=p.text("tfserving_grpc_target"),
            )
        check_inputs(job)
        partial = results.with_name(f"{results.stem}.partial.json")
        measured = run_bench(job, keep=lambda so_far: keep_partial(partial, so_far))
    goals = reporting.targets(measured)
    cells, load = reporting.plot_rows(measured)
    write_json(results, measured)
    write_json(metrics, reporting.metrics(measured, goals))
    write_csv(plots, cells, list(cells[0]))
    write_csv(load_plots, load, list(load[0]))
    write_text(report, reporting.markdown(measured, goals))
    partial.unlink(missing_ok=True)
    for key, goal in goals.items():
        log.info("%s: %s (%s) %s", key, goal["value"], goal["target"], "met" if goal["met"] else "NOT MET")


def keep_partial(path: Path, so_far: dict) -> None:
    """The results of the models measured so far, in case a later one fails (removed when the bench completes)."""
    write_json(path, so_far)
    log.info("measured so far (%s): %s", ", ".join(so_far["models"]), path)


if __name__ == "__main__":
    main()
