"""Benchmark: head-of-line blocking in the server. 16 clients send one short text per request, first alone, then
beside 2 clients sending max-size `:classify_text` requests (256 long texts, ~3.7 MB each), for 60 s each, /healthz
probed every 50 ms throughout. What must hold (issue #11): no errors but well-formed 503s, the short requests' p99
at most 3x their p99 alone, /healthz always under 100 ms.

    make demo   # or any served model folder: --model-dir models/ir/vbert
    python benchmarks/server_load.py --out benchmarks/results/server_load.json

Server and clients share this machine's cores; the numbers are for that set-up and say which machine made them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.load import max_size_texts, run_mixed_load  # noqa: E402
from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.serving.client import RestClient  # noqa: E402
from vbert.serving.launcher import running_server  # noqa: E402
from vbert.text.tasks import read_split  # noqa: E402

log = logging.getLogger("benchmark")


def markdown(result: dict) -> str:
    alone, mixed, large, health = (
        result["short_alone"],
        result["short_beside_large"],
        result["large"],
        result["healthz"],
    )
    return "\n".join(
        [
            f"# Server under mixed-size load ({result['machine']['cpu']}, {result['machine']['cpus']} cores)",
            "",
            f"`python benchmarks/server_load.py` — model `{result['model_dir']}`, {result['seconds']:.0f} s per run,",
            "server and clients on the same machine.",
            "",
            "| run | requests | p50 ms | p99 ms | errors | 503 + Retry-After |",
            "|---|---:|---:|---:|---:|---:|",
            f"| 16 short clients alone | {alone['requests']} | {alone['p50_ms']:.1f} | {alone['p99_ms']:.1f} "
            f"| {alone['errors']} | {alone['busy']} |",
            f"| 16 short clients beside 2 max-size | {mixed['requests']} | {mixed['p50_ms']:.1f} "
            f"| {mixed['p99_ms']:.1f} | {mixed['errors']} | {mixed['busy']} |",
            f"| 2 max-size clients (256 long texts) | {large['requests']} | {large['p50_ms']:.1f} "
            f"| {large['p99_ms']:.1f} | {large['errors']} | {large['busy']} |",
            "",
            f"Short requests' p99 beside the large ones / alone: **{result['short_p99_ratio']}x** (target <= 3x). "
            f"/healthz: {health['probes']} probes, p99 {health['p99_ms']} ms, slowest **{health['max_ms']} ms** "
            f"(target < 100 ms), {health['failures']} failed.",
            "",
        ]
    )


@click.command()
@click.option("--model-dir", type=click.Path(path_type=Path), default=REPO / "models/ir/vbert", show_default=True)
@click.option("--backend", type=click.Choice(["openvino", "tensorflow"]), default="openvino", show_default=True)
@click.option(
    "--test-file", type=click.Path(path_type=Path), default=REPO / "data/sample/pkg_section/test.tsv", show_default=True
)
@click.option("--seconds", default=60.0, show_default=True, help="length of each run")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/server_load.json")
def main(model_dir: Path, backend: str, test_file: Path, seconds: float, out: Path) -> None:
    """Short requests' latency with and without max-size requests beside them, and /healthz's."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not model_dir.is_dir():
        raise click.UsageError(f"{model_dir}: no served model there; run `make demo` first or pass --model-dir")
    texts = read_split(test_file).texts_a
    arguments = ["--backend", backend, "--model-dir", str(model_dir)]
    with running_server(arguments, out.with_suffix(".server.log")) as server:
        client = RestClient(server.url, model_dir.name, timeout=60)
        result = run_mixed_load(
            client.classify_texts,
            texts,
            client.classify_texts,
            max_size_texts(texts, 512),
            f"{server.url}/healthz",
            seconds,
        )
    result |= {"model_dir": str(model_dir), "backend": backend, "machine": machine()}
    log.info("%s", json.dumps(result, indent=1))
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
