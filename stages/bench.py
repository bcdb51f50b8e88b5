"""Stage bench: the paper's Table 3 per backend and request batch, the server under load, the targets."""

import functools
import logging
import tempfile
from pathlib import Path

import click

from vbert.bench import report as reporting
from vbert.core.atomic import write_csv, write_json, write_text
from vbert.core.cli import stage
from vbert.core.params import params_help, read_job
from vbert.pipeline.bench import BenchJob, keep_partial, require_inputs, run_bench

log = logging.getLogger("vbert.bench")

JOB = BenchJob


@click.command(epilog=params_help(JOB))
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
    partial = results.with_name(f"{results.stem}.partial.json")
    with tempfile.TemporaryDirectory(prefix="vbert-bench-") as work:
        paths = dict(serving_dir=model, teacher_dir=teacher, ir_dir=ir_dir, task_dir=task_dir, work_dir=Path(work))
        job = read_job(JOB, params_file, **paths)
        require_inputs(job)
        measured = run_bench(job, keep=functools.partial(keep_partial, partial))
    goals = reporting.targets(measured)
    cells, load = reporting.plots(measured)
    write_json(results, measured)
    write_json(metrics, reporting.metrics(measured, goals))
    write_csv(plots, cells, list(cells[0]))
    write_csv(load_plots, load, list(load[0]))
    write_text(report, reporting.markdown(measured, goals))
    partial.unlink(missing_ok=True)
    for key, goal in goals.items():
        log.info("%s: %s (%s) %s", key, goal["value"], goal["target"], "met" if goal["met"] else "NOT MET")


if __name__ == "__main__":
    main()
