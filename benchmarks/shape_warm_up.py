"""Benchmark: what a new input shape costs OpenVINO, and what the server's warm-up buys on real texts.

1. In process: the served IR, compiled as the server compiles it; for each (rows, width) in turn, its first
   inference against the median of the next five: the set-up a request pays when its shape is new.
2. The server, started with `--warm-up-rows ''` (no warm-up) and with its default (1, 2, 4, 8, 16, 32 rows at
   every width bucket), alternately: 16 clients send the task's test texts from the moment it is ready; p50 and p99
   over the whole run and over its first `--first-seconds`, and the time from start to ready.

    make demo
    python benchmarks/shape_warm_up.py --out benchmarks/results/shape_warm_up.json

Server and clients share this machine's cores; the numbers are for that set-up and say which machine made them.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.load import run_load  # noqa: E402
from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.model.export import latest_version  # noqa: E402
from vbert.serving.backends import OpenVINOBackend  # noqa: E402
from vbert.serving.client import RestClient  # noqa: E402
from vbert.serving.launcher import running_server  # noqa: E402
from vbert.text.tasks import read_split  # noqa: E402

log = logging.getLogger("benchmark")
ROWS = (1, 2, 3, 5, 8, 13, 16)
WIDTHS = (16, 32, 48)


def first_call_costs(version_dir: Path) -> list[dict]:
    """Per (rows, width), visited in order: the first inference's ms and the median of the next five."""
    backend = OpenVINOBackend.from_version(version_dir)
    rows = []
    for width in WIDTHS:
        for n in ROWS:
            ids = np.ones((n, width), np.int32)
            inputs = {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}
            times = []
            for _ in range(6):
                started = time.perf_counter()
                backend.predict(inputs)
                times.append(1000 * (time.perf_counter() - started))
            steady = float(np.median(times[1:]))
            rows.append({"rows": n, "width": width, "first_ms": round(times[0], 2), "steady_ms": round(steady, 2)})
    return rows


def served_run(model_dir: Path, texts: list[str], warm_up: bool, seconds: float, first: float, log_file: Path) -> dict:
    """Start the server (with or without warm-up), then 16 clients for `seconds`; also the first `first` seconds."""
    arguments = ["--backend", "openvino", "--model-dir", str(model_dir), "--poll-seconds", "0"]
    arguments += [] if warm_up else ["--warm-up-rows", ""]
    started = time.perf_counter()
    with running_server(arguments, log_file) as server:
        ready = time.perf_counter() - started
        client = RestClient(server.url, model_dir.name, timeout=60)
        early = run_load(client.classify_texts, texts, 16, first).as_dict()
        rest = run_load(client.classify_texts, texts, 16, seconds - first).as_dict()
    keys = ("requests", "sequences_per_second", "p50_ms", "p99_ms", "errors")
    return {
        "warm_up": warm_up,
        "seconds_to_ready": round(ready, 1),
        "first": {k: early[k] for k in keys},
        "after": {k: rest[k] for k in keys},
    }


def markdown(result: dict) -> str:
    costs = result["first_call"]
    extra = [c["first_ms"] - c["steady_ms"] for c in costs]
    lines = [
        f"# A new input shape's cost, and the server's warm-up ({result['machine']['cpu']}, "
        f"{result['machine']['cpus']} cores)",
        "",
        f"`python benchmarks/shape_warm_up.py` — model `{result['model_dir']}` ({result['precision']}).",
        "",
        f"In process: a shape's first inference costs **{np.median(extra):.1f} ms** more than the next ones (median "
        f"over {len(costs)} shapes; min {min(extra):.1f}, max {max(extra):.1f}).",
        "",
        "| rows | width | first ms | steady ms |",
        "|---:|---:|---:|---:|",
        *(f"| {c['rows']} | {c['width']} | {c['first_ms']} | {c['steady_ms']} |" for c in costs),
        "",
        "Served, 16 clients on the test texts from the moment the server is ready; the first "
        f"{result['first_seconds']:.0f} s apart from the rest ({result['seconds']:.0f} s per run):",
        "",
        "| warm-up | s to ready | first: requests | p50 ms | p99 ms | after: seq/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        f, a = r["first"], r["after"]
        lines.append(
            f"| {'on' if r['warm_up'] else 'off'} | {r['seconds_to_ready']} | {f['requests']} | {f['p50_ms']} | "
            f"{f['p99_ms']} | {a['sequences_per_second']:.1f} | {a['p50_ms']} | {a['p99_ms']} | "
            f"{f['errors'] + a['errors']} |"
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--model-dir", type=click.Path(path_type=Path), default=REPO / "models/ir/vbert", show_default=True)
@click.option(
    "--test-file", type=click.Path(path_type=Path), default=REPO / "data/sample/pkg_section/test.tsv", show_default=True
)
@click.option("--seconds", default=30.0, show_default=True, help="length of each served run")
@click.option("--first-seconds", default=5.0, show_default=True, help="the start of each run, reported apart")
@click.option("--rounds", default=2, show_default=True, help="runs with and without warm-up, alternately")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/shape_warm_up.json")
def main(model_dir: Path, test_file: Path, seconds: float, first_seconds: float, rounds: int, out: Path) -> None:
    """A new shape's cost in process, and served latency with and without the warm-up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not model_dir.is_dir():
        raise click.UsageError(f"{model_dir}: no served model there; run `make demo` first or pass --model-dir")
    version = latest_version(model_dir)
    texts = read_split(test_file).texts_a
    result = {
        "model_dir": str(model_dir),
        "precision": json.loads((version / "ir.json").read_text())["precision"],
        "first_call": first_call_costs(version),
        "seconds": seconds,
        "first_seconds": first_seconds,
        "runs": [],
        "machine": machine(),
    }
    logs = tempfile.mkdtemp(prefix="vbert-warm-up-")
    for round_ in range(rounds):
        for warm_up in (False, True):
            log_file = Path(logs) / f"server-{round_}-{'on' if warm_up else 'off'}.log"
            result["runs"].append(served_run(model_dir, texts, warm_up, seconds, first_seconds, log_file))
            log.info("%s", result["runs"][-1])
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
