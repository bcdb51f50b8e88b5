"""Benchmark: where a batch-1 request's time goes in the server, against the model call alone (issue #20).

One real text per request (the task's test split), one request at a time, on the served model folder:

    in process    the backend's own call on the text's token ids: at the text's length, and padded to the server's
                  width bucket (what the server computes)
    keep-alive    POST :classify_text over one persistent HTTP/1.1 connection (http.client); the server's
                  `Server-Timing` spans (read, parse, encode, queue, model, batching, respond, total) per request
    new connection  the same request on a new TCP connection each time (`RestClient(keep_alive=False)`)

Reported: medians (and p90) of each, the overhead of each path over the model call at the text's length, and the
breakdown of the keep-alive median by span; "outside the app" is end-to-end minus the server's own total (the
socket, uvicorn's HTTP parsing, the client).

    make demo
    python benchmarks/http_overhead.py                # models/ir/vbert; writes benchmarks/results/http_overhead.*
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.model.export import latest_version  # noqa: E402
from vbert.serving.batching import padded_length, stack_padded  # noqa: E402
from vbert.serving.client import RestClient  # noqa: E402
from vbert.serving.launcher import running_server  # noqa: E402
from vbert.serving.timing import parse_header  # noqa: E402
from vbert.text.tasks import read_split  # noqa: E402

log = logging.getLogger("benchmark")
SPANS = ("read", "parse", "encode", "queue", "model", "batching", "respond")
BUCKET = 16  # the server's default --bucket
PATHS = {"keep_alive": "HTTP, one kept-alive connection", "new_connection": "HTTP, a new connection each"}


def summary(values: list[float]) -> dict:
    array = np.asarray(values) * 1000
    return {"median_ms": round(float(np.median(array)), 3), "p90_ms": round(float(np.percentile(array, 90)), 3)}


def in_process(model_dir: Path, backend: str, texts: list[str], repeats: int) -> dict:
    """The backend's call alone on each text, at its own length and padded to the width bucket."""
    from vbert.serving.backends import load_version

    model = load_version(backend, latest_version(model_dir))
    own, padded = [], []
    for text in texts:
        features = model.encoder.encode_items([text]).features
        width = padded_length([features["input_ids"].shape[1]], BUCKET, model.config.max_seq_length)
        wide = stack_padded([features], width)
        for inputs, times in ((features, own), (wide, padded)):
            model.backend.predict(inputs)  # this shape compiled and cached
            started = time.perf_counter()
            for _ in range(repeats):
                model.backend.predict(inputs)
            times.append((time.perf_counter() - started) / repeats)
    return {"own_length": summary(own), "bucket_padded": summary(padded), "per_text_own_s": own}


def keep_alive(url: str, model: str, texts: list[str]) -> tuple[list[float], list[dict[str, float]]]:
    """End-to-end seconds and the Server-Timing spans of each request over one persistent connection."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    seconds, spans = [], []
    for text in [texts[0], *texts]:  # the first opens the connection: not counted
        body = json.dumps({"texts": [text]}).encode()
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{model}:classify_text", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        seconds.append(time.perf_counter() - started)
        spans.append({k: ms / 1000 for k, ms in parse_header(response.getheader("Server-Timing") or "").items()})
    connection.close()
    return seconds[1:], spans[1:]


def new_connections(url: str, model: str, texts: list[str]) -> list[float]:
    client, seconds = RestClient(url, model, timeout=60, keep_alive=False), []
    for text in texts:
        started = time.perf_counter()
        client.classify_texts([text])
        seconds.append(time.perf_counter() - started)
    return seconds


def breakdown(seconds: list[float], spans: list[dict[str, float]]) -> dict:
    """Median milliseconds of each span, of the server's total, and of end-to-end minus it."""
    out = {name: summary([s.get(name, 0.0) for s in spans])["median_ms"] for name in SPANS}
    out["server_total"] = summary([s["total"] for s in spans])["median_ms"]
    out["outside_the_app"] = summary([e - s["total"] for e, s in zip(seconds, spans, strict=True)])["median_ms"]
    return out


def markdown(result: dict) -> str:
    model, paths, parts = result["model_call"], result["paths"], result["keep_alive_breakdown_ms"]
    lines = [
        f"# Batch-1 latency: server against model call ({result['machine']['cpu']}, {result['machine']['cpus']} cores)",
        "",
        f"`python benchmarks/http_overhead.py`: model `{result['model_dir']}` ({result['backend']}), "
        f"{result['requests']} real texts from `{result['test_file']}`, one request at a time.",
        "",
        "| path | median ms | p90 ms | over the model call at the text's length |",
        "|---|---:|---:|---:|",
        f"| model call in process, text's own length | {model['own_length']['median_ms']:.2f} "
        f"| {model['own_length']['p90_ms']:.2f} | |",
        f"| model call in process, padded to the {BUCKET}-piece bucket | {model['bucket_padded']['median_ms']:.2f} "
        f"| {model['bucket_padded']['p90_ms']:.2f} | {result['bucket_padding_percent']:+.1f}% |",
    ]
    for name, label in PATHS.items():
        lines.append(
            f"| {label} | {paths[name]['median_ms']:.2f} | {paths[name]['p90_ms']:.2f} "
            f"| {result['overhead_percent'][name]:+.1f}% ({result['overhead_ms'][name]:+.2f} ms) |"
        )
    lines += [
        "",
        "Where the kept-alive request's time goes (median ms of each span, from the server's `Server-Timing`):",
        "",
        "| " + " | ".join([*SPANS, "server total", "outside the app"]) + " |",
        "|" + "---:|" * (len(SPANS) + 2),
        "| " + " | ".join(f"{parts[k]:.2f}" for k in [*SPANS, "server_total", "outside_the_app"]) + " |",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--model-dir", type=click.Path(path_type=Path), default=REPO / "models/ir/vbert", show_default=True)
@click.option("--backend", type=click.Choice(["openvino", "tensorflow"]), default="openvino", show_default=True)
@click.option(
    "--test-file", type=click.Path(path_type=Path), default=REPO / "data/sample/pkg_section/test.tsv", show_default=True
)
@click.option("--requests", default=200, show_default=True, help="texts, one request each")
@click.option("--repeats", default=5, show_default=True, help="in-process calls per text (their mean)")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/http_overhead.json")
def main(model_dir: Path, backend: str, test_file: Path, requests: int, repeats: int, out: Path) -> None:
    """Batch-1 latency through the server, span by span, against the model call alone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not model_dir.is_dir():
        raise click.UsageError(f"{model_dir}: no served model there; run `make demo` first or pass --model-dir")
    texts = read_split(test_file).texts_a[:requests]
    model_call = in_process(model_dir, backend, texts, repeats)
    arguments = ["--backend", backend, "--model-dir", str(model_dir)]
    with running_server(arguments, out.with_suffix(".server.log")) as server:
        seconds, spans = keep_alive(server.url, model_dir.name, texts)
        fresh = new_connections(server.url, model_dir.name, texts)
    own = model_call.pop("per_text_own_s")
    paths = {"keep_alive": summary(seconds), "new_connection": summary(fresh)}
    base = model_call["own_length"]["median_ms"]
    result = {
        "model_dir": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir),
        "backend": backend,
        "test_file": str(test_file.relative_to(REPO) if test_file.is_relative_to(REPO) else test_file),
        "requests": len(texts),
        "model_call": model_call,
        "paths": paths,
        "overhead_ms": {k: round(v["median_ms"] - base, 3) for k, v in paths.items()},
        "overhead_percent": {k: round(100 * (v["median_ms"] / base - 1), 1) for k, v in paths.items()},
        "per_request_overhead_ms_median": round(
            float(np.median([(e - m) * 1000 for e, m in zip(seconds, own, strict=True)])), 3
        ),
        "bucket_padding_percent": round(100 * (model_call["bucket_padded"]["median_ms"] / base - 1), 1),
        "keep_alive_breakdown_ms": breakdown(seconds, spans),
        "machine": machine(),
    }
    log.info("%s", json.dumps(result, indent=1))
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
