"""Benchmark: where a batch-1 request's time goes in the server, against the model call alone (issue #20).

One real text per request (the task's test split), one request at a time, on the served model folder; each
request follows the in-process calls on the same text, so both are measured at the same moment and the overhead is a
median of per-request differences (the machine's speed drifts by more than the overhead between runs):

    in process    the backend's own call on the text's token ids: at the text's length, and padded to the server's
                  width bucket (what the server computes)
    keep-alive    POST :classify_text over one persistent HTTP/1.1 connection (http.client); the server's
                  `Server-Timing` spans (read, parse, encode, queue, model, batching, respond, total) per request
    new connection  the same request on a new TCP connection each time (`RestClient(keep_alive=False)`)

Reported: medians (and p90) of each, the overhead of each path over the model call at the text's length, and the
breakdown of the keep-alive median by span; "outside the app" is end-to-end minus the server's own total (the
socket, uvicorn's HTTP parsing, the client). Beside them, floors timed the same way: a bare ASGI app on uvicorn
(what "outside the app" cannot go below here) and a no-op's hand-off to a thread and back (part of `batching`).

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
JSON = {"Content-Type": "application/json"}
PATHS = {"keep_alive": "HTTP, one kept-alive connection", "new_connection": "HTTP, a new connection each"}


def summary(values: list[float]) -> dict:
    array = np.asarray(values) * 1000
    return {"median_ms": round(float(np.median(array)), 3), "p90_ms": round(float(np.percentile(array, 90)), 3)}


def settle() -> None:
    """Let the last call's inference threads go idle: OpenVINO's (like ONNX Runtime's) spin for a while after each
    call, and would take the cores from whatever is timed next."""
    time.sleep(0.02)


def paired(model_dir: Path, backend: str, url: str, texts: list[str], repeats: int) -> dict[str, list]:
    """Per text, interleaved so that both sides see the same machine at the same moment: the backend's own call in
    this process (mean of `repeats`, at the text's length and padded to the width bucket as the server pads it), then
    the same text as one request over one kept-alive connection, with the server's `Server-Timing` spans."""
    from vbert.serving.backends import load_version

    model = load_version(backend, latest_version(model_dir))
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    out: dict[str, list] = {"own": [], "padded": [], "end_to_end": [], "spans": []}
    for index, text in enumerate([texts[0], *texts]):  # the first opens the connection: not counted
        features = model.encoder.encode_items([text]).features
        width = padded_length([features["input_ids"].shape[1]], BUCKET, model.config.max_seq_length)
        calls = {}
        for name, inputs in (("own", features), ("padded", stack_padded([features], width))):
            model.backend.predict(inputs)  # this shape compiled and cached
            settle()
            started = time.perf_counter()
            for _ in range(repeats):
                model.backend.predict(inputs)
            calls[name] = (time.perf_counter() - started) / repeats
        body = json.dumps({"texts": [text]}).encode()
        settle()
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{model_dir.name}:classify_text", body, JSON)
        response = connection.getresponse()
        response.read()
        seconds = time.perf_counter() - started
        if index:
            out["own"].append(calls["own"])
            out["padded"].append(calls["padded"])
            out["end_to_end"].append(seconds)
            spans = parse_header(response.getheader("Server-Timing") or "")
            out["spans"].append({k: ms / 1000 for k, ms in spans.items()})
    connection.close()
    return out


BARE_SERVER = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": []}'})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", log_level="warning")
"""


def floors(texts: list[str]) -> dict[str, float]:
    """What the same requests cost with nothing of ours in them, timed as `paired` times them (after `settle`): a
    bare ASGI app on uvicorn (uvloop, httptools) that reads the body and answers a fixed JSON, over one kept-alive
    connection; and a no-op's round trip through a one-thread executor (the hand-off to the batcher's inference
    thread and back). Median milliseconds."""
    import asyncio
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from vbert.serving.launcher import free_ports, stop, wait_until_ready

    (port,) = free_ports(1)
    process = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        if not wait_until_ready(f"http://127.0.0.1:{port}", process, 30, 0.1):  # it answers 200 on any path
            raise RuntimeError(f"the bare uvicorn app did not come up on port {port}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        bare = []
        for text in texts:
            body = json.dumps({"texts": [text]}).encode()
            settle()
            started = time.perf_counter()
            connection.request("POST", "/v1/models/bare:classify_text", body, JSON)
            connection.getresponse().read()
            bare.append(time.perf_counter() - started)
        connection.close()
    finally:
        stop(process)

    async def hand_offs() -> list[float]:
        loop, seconds = asyncio.get_running_loop(), []
        with ThreadPoolExecutor(1) as thread:
            for _ in texts:
                settle()
                started = time.perf_counter()
                await loop.run_in_executor(thread, time.perf_counter)
                seconds.append(time.perf_counter() - started)
        return seconds

    return {
        "bare_uvicorn_round_trip": summary(bare)["median_ms"],
        "thread_hand_off_round_trip": summary(asyncio.run(hand_offs()))["median_ms"],
    }


def new_connections(url: str, model: str, texts: list[str]) -> list[float]:
    client, seconds = RestClient(url, model, timeout=60, keep_alive=False), []
    for text in texts:
        started = time.perf_counter()
        client.classify_texts([text])
        seconds.append(time.perf_counter() - started)
    return seconds


def median_difference_ms(first: list[float], second: list[float]) -> float:
    """The median over requests of first minus second (seconds in, milliseconds out): paired, so drift of the
    machine's speed between requests cancels."""
    return round(float(np.median(np.subtract(first, second))) * 1000, 3)


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
        "| path | median ms | p90 ms | over the model call at the text's length (median per request) |",
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
        f"The server's `model` span over the same call in process, padded as the server pads it (median per "
        f"request): {result['model_span_over_padded_call_ms']:+.2f} ms.",
        "",
        "Where the kept-alive request's time goes (median ms of each span, from the server's `Server-Timing`):",
        "",
        "| " + " | ".join([*SPANS, "server total", "outside the app"]) + " |",
        "|" + "---:|" * (len(SPANS) + 2),
        "| " + " | ".join(f"{parts[k]:.2f}" for k in [*SPANS, "server_total", "outside_the_app"]) + " |",
        "",
        "Floors on this machine, timed the same way (after the same idle gap): a bare ASGI app on uvicorn answering "
        f'a fixed JSON, {result["floors_ms"]["bare_uvicorn_round_trip"]:.2f} ms end to end (compare "outside the '
        f"app\"); a no-op's hand-off to a thread and back, {result['floors_ms']['thread_hand_off_round_trip']:.2f} ms "
        "(part of `batching`).",
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
@click.option(
    "--repeats",
    default=1,
    show_default=True,
    help="in-process calls per text (their mean); 1 matches the server's call, which also follows an idle gap "
    "(later repeats find OpenVINO's threads awake and read faster)",
)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/http_overhead.json")
def main(model_dir: Path, backend: str, test_file: Path, requests: int, repeats: int, out: Path) -> None:
    """Batch-1 latency through the server, span by span, against the model call alone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not model_dir.is_dir():
        raise click.UsageError(f"{model_dir}: no served model there; run `make demo` first or pass --model-dir")
    texts = read_split(test_file).texts_a[:requests]
    arguments = ["--backend", backend, "--model-dir", str(model_dir)]
    with running_server(arguments, out.with_suffix(".server.log")) as server:
        pairs = paired(model_dir, backend, server.url, texts, repeats)
        fresh = new_connections(server.url, model_dir.name, texts)
    floor = floors(texts)
    own, seconds, spans = pairs["own"], pairs["end_to_end"], pairs["spans"]
    paths = {"keep_alive": summary(seconds), "new_connection": summary(fresh)}
    base = summary(own)["median_ms"]
    per_request = {
        "keep_alive": median_difference_ms(seconds, own),
        "new_connection": round(paths["new_connection"]["median_ms"] - base, 3),  # not interleaved: medians
    }
    result = {
        "model_dir": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir),
        "backend": backend,
        "test_file": str(test_file.relative_to(REPO) if test_file.is_relative_to(REPO) else test_file),
        "requests": len(texts),
        "model_call": {"own_length": summary(own), "bucket_padded": summary(pairs["padded"])},
        "paths": paths,
        "overhead_ms": per_request,
        "overhead_percent": {k: round(100 * v / base, 1) for k, v in per_request.items()},
        "model_span_over_padded_call_ms": median_difference_ms([s.get("model", 0.0) for s in spans], pairs["padded"]),
        "bucket_padding_percent": round(100 * (summary(pairs["padded"])["median_ms"] / base - 1), 1),
        "keep_alive_breakdown_ms": breakdown(seconds, spans),
        "floors_ms": floor,
        "machine": machine(),
    }
    log.info("%s", json.dumps(result, indent=1))
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
