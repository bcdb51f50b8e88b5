"""The whole bench, model by model: Table 3 (request batches, feed-forward and end-to-end, per backend), then the
server under load (clients, batching on and off), the paper's way against the served path on real texts, and a
soak run for errors and memory."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import psutil
from tqdm import tqdm

from vbert.bench import measure
from vbert.bench.load import max_size_texts, run_load, run_mixed_load
from vbert.bench.measure import ceilings_gflops, cpu_seconds, resident_bytes, summarise
from vbert.bench.models import MODELS, BenchModel, pipeline_model, random_model, server_folder
from vbert.bench.report import PIPELINE_MODEL
from vbert.bench.runners import (
    ONNXRUNTIME_SPIN_SECONDS,
    Runner,
    encoding,
    in_process,
    naive_predict,
    onnxruntime_predict,
    openvino_predict,
    over_http_texts,
    over_predict_api,
    tensorflow_predict,
)
from vbert.core import params as knob
from vbert.core.atomic import write_json
from vbert.core.errors import InputError
from vbert.model.bert import BertConfig, classifier_flops
from vbert.model.export import latest_version
from vbert.model.ir_folder import read_settings
from vbert.serving.client import GrpcClient, RestClient
from vbert.serving.launcher import running_server
from vbert.text.encoding import Encoder, Item
from vbert.text.tasks import read_split, split_file
from vbert.text.tokenization import FullTokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchJob:
    SECTION: ClassVar[str] = "bench"
    serving_dir: Path  # the freeze stage's <base>/<model_name>
    teacher_dir: Path  # the freeze stage's teacher <base>/<model_name> (the shipped model, or the one it learnt from)
    ir_dir: Path  # the ir stage's output (variants/, <model_name>/<version>/ir.json)
    task_dir: Path  # real texts: the task's test split
    work_dir: Path  # scratch: random models, server folders and logs
    models: tuple[str, ...] = knob.choices(
        MODELS, "bert-base: 12 x 768, random weights (speed only); pipeline: the ir stage's model; tiny"
    )
    batch_sizes: tuple[int, ...] = knob.integers("texts per request, as in the paper's Table 3", min=1)
    requests: int = knob.integer("requests per cell", min=3)
    large_batch_requests: int = knob.integer("BERT-base requests at batch >= 100 (each takes seconds)", min=3)
    seq_length: int = knob.integer("max_seq_length of the random models", min=8, max=512)
    clients: tuple[int, ...] = knob.integers("concurrent clients against the server, one text per request", min=1)
    load_seconds: float = knob.number("seconds per load run", min=1)
    soak_seconds: float = knob.number("seconds of the reliability run (the most clients)", min=1)
    naive: bool = knob.boolean("the baseline: load the SavedModel, then predict, per request")
    tfserving_rest_url: str = knob.text("e.g. http://localhost:8501: a TF-Serving serving models/serving ('' = none)")
    tfserving_grpc_target: str = knob.text("e.g. localhost:8500 ('' = none)")


BENCH_REQUEST_TIMEOUT_MS = 600_000  # the bench times requests; it never wants one cut off by its deadline
CALIBRATION_TEXTS = 32  # random models: int8 variants (where the pipeline's is int8) calibrated on these test texts
SHORT_PIECES = 32  # the short-text cell: at most this many pieces with [CLS] and [SEP]


@dataclass
class Texts:
    """The request sets: `fixed` texts long enough to fill max_seq_length (the paper's fixed MSL), `real` ones (the
    task's test split with its own length distribution), and `short` ones (each real text cut to SHORT_PIECES
    pieces: where per-request overheads weigh most)."""

    fixed: list[str]
    real: list[Item]
    short: list[str]

    def sets(self) -> dict[str, list[Item]]:
        return {"fixed": self.fixed, "real": self.real, "short": self.short}


def short_texts(items: list[Item], tokenizer: FullTokenizer, pieces: int) -> list[str]:
    """Each item (a pair's texts joined) cut to its first words that make at most `pieces` - 2 word pieces."""
    out = []
    for item in items:
        words = (item if isinstance(item, str) else " ".join(item)).split()
        counts = np.cumsum([len(piece) for piece in tokenizer.encode_batch(words)]) if words else np.zeros(0)
        out.append(" ".join(words[: int(np.searchsorted(counts, pieces - 2, side="right"))]) or "a")
    return out


def long_texts(items: list[Item], tokenizer: FullTokenizer, pieces: int) -> list[str]:
    """One text per input item (a pair's texts joined), followed by the next ones until it has at least `pieces`
    pieces."""
    texts = [item if isinstance(item, str) else " ".join(item) for item in items]
    lengths = [len(p) for p in tokenizer.encode_batch(texts)]
    out = []
    for start in range(len(texts)):
        joined, count, index = [], 0, start
        while count < pieces:
            joined.append(texts[index % len(texts)])
            count += lengths[index % len(texts)]
            index += 1
        out.append(" ".join(joined))
    return out


def model_encoder(model: BenchModel) -> Encoder:
    """The encoder a bench model's texts go through (its tokenizer, its max_seq_length), as the server's."""
    return Encoder(load_tokenizer(model.assets), model.serving.max_seq_length)


def request_windows(texts: list[str], batch: int, count: int) -> list[list[str]]:
    """`count` requests of `batch` texts, consecutive windows that wrap around."""
    doubled = texts * (batch // len(texts) + 2)
    return [doubled[(i * batch) % len(texts) :][:batch] for i in range(count)]


@dataclass
class CellTimes:
    feed_forward: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)  # (busy, total) CPU seconds per request
    flops: list[float] = field(default_factory=list)
    spans: list[dict[str, float]] = field(default_factory=list)  # the server's Server-Timing per request (ms)


def time_cells(runners: list[Runner], windows: list[list[str]], flops_of, desc: str) -> dict[str, CellTimes]:
    """Every request through every runner, interleaved request by request (so that a slow spell of the machine
    hits all backends alike), after one warm-up request each; a runner whose threads stay busy after a request
    (`settle_seconds`) gets that long before the next one is timed."""
    cells = {r.name: CellTimes() for r in runners}
    for runner in runners:
        runner.run(windows[0])
    with tqdm(total=len(windows) * len(runners), desc=desc, unit="req", leave=False) as bar:
        for texts in windows:
            flops = flops_of(texts)
            for runner in runners:
                before = psutil.cpu_times()
                feed_forward, end_to_end = runner.run(texts)
                cell = cells[runner.name]
                if runner.spans is not None:
                    cell.spans.append(runner.spans())
                time.sleep(runner.settle_seconds)
                cell.busy.append(cpu_seconds(before, psutil.cpu_times()))
                cell.end_to_end.append(end_to_end)
                cell.flops.append(flops)
                if feed_forward is not None:
                    cell.feed_forward.append(feed_forward)
                bar.update()
    return cells


def cpu_percent(busy: list[tuple[float, float]]) -> dict[str, float | None]:
    """The machine's busy share over a cell's requests, and the highest of one request among those that lasted at
    least 20 ticks of all CPUs (shorter ones are too coarse to tell)."""
    total = sum(t for _, t in busy)
    long_enough = [b / t for b, t in busy if t >= 0.2]
    return {
        "cpu_percent": round(100 * sum(b for b, _ in busy) / total, 1) if total else None,
        "cpu_peak_percent": round(100 * max(long_enough), 1) if long_enough else None,
    }


def cell_result(runner: Runner, times: CellTimes, batch: int) -> dict:
    result = {
        "backend": runner.backend,
        "precision": runner.precision,
        "batch": batch,
        "feed_forward": summarise(times.feed_forward, batch).as_dict() if times.feed_forward else None,
        "end_to_end": summarise(times.end_to_end, batch).as_dict(),
        **cpu_percent(times.busy),
    }
    if times.spans:
        result["server_timing_ms"] = {
            name: round(float(np.median([spans.get(name, 0.0) for spans in times.spans])), 3) for name in times.spans[0]
        }
    seconds = times.feed_forward or times.end_to_end
    result["gflops"] = round(sum(times.flops) / sum(seconds) / 1e9, 1)
    return result


def highest_ceilings(measurements: list[dict[str, dict[str, float]]]) -> dict[str, dict]:
    """Per precision, the highest rate any kernel reached over the run's measurements, and the kernel that set it:
    the machine's speed drifts within a run (slow spells of a fifth below the usual rate), and the highest reading
    makes every share conservative. bf16 is never below fp32 (a CPU without bf16 units computes it in fp32)."""
    ceilings = {}
    for precision in measurements[0]:
        rate, kernel = max((rate, kernel) for m in measurements for kernel, rate in m[precision].items())
        ceilings[precision] = {"gflops": rate, "set_by": kernel}
    if "bf16" in ceilings and ceilings["bf16"]["gflops"] < ceilings["fp32"]["gflops"]:
        ceilings["bf16"] = {"gflops": ceilings["fp32"]["gflops"], "set_by": f"fp32 {ceilings['fp32']['set_by']}"}
    return ceilings


def ceiling_precision(cell_precision: str) -> str:
    """The ceiling a cell is read against: bf16 and int8 their own (int8 with bf16 around it: int8's), anything else
    (fp32, fp16 weights) fp32's."""
    if cell_precision.startswith("int8"):
        return "int8"
    return cell_precision if cell_precision == "bf16" else "fp32"


def add_ceiling_shares(results: dict, ceilings: dict[str, dict]) -> None:
    """Every cell's GFLOP/s as a percentage of the ceiling of its precision."""
    for model in results["models"].values():
        for cells in model["table3"].values():
            for cell in cells:
                ceiling = ceilings[ceiling_precision(cell["precision"])]["gflops"]
                cell["ceiling_percent"] = round(100 * cell["gflops"] / ceiling, 1)


def add_speedups(cells: list[dict]) -> None:
    """Speedup of every cell over the naive baseline of the same batch (feed-forward and end-to-end)."""
    naive = {c["batch"]: c for c in cells if c["backend"] == "naive"}
    for cell in cells:
        base = naive.get(cell["batch"])
        for column in ("feed_forward", "end_to_end"):
            if base and cell[column] and base[column]:
                cell[f"speedup_{column}"] = round(base[column]["trimmed_mean"] / cell[column]["trimmed_mean"], 2)


def chosen_precision(job: BenchJob, model_name: str) -> str:
    """The precision the ir stage chose for the pipeline's model (the server's default)."""
    return read_settings(latest_version(job.ir_dir / model_name)).precision


def server_precision(chosen: str, model: BenchModel) -> str:
    """The ir stage's choice for the pipeline's model where `model` has that variant; else fp32 (the random models
    have int8 variants only when the pipeline's choice is one)."""
    if chosen in model.variants:
        return chosen
    log.warning("%s has no %s variant (the ir stage's choice): its server computes in fp32", model.name, chosen)
    return "fp32"


class ModelBench:
    """Everything measured for one model."""

    def __init__(self, job: BenchJob, model: BenchModel, precision: str, real_texts: list[Item], labels: list[str]):
        self.job, self.model, self.precision, self.labels = job, model, precision, labels
        self.max_len = model.serving.max_seq_length
        self.encoder = model_encoder(model)
        tokenizer = self.encoder.tokenizer
        self.texts = Texts(
            long_texts(real_texts, tokenizer, self.max_len),
            real_texts,
            short_texts(real_texts, tokenizer, min(SHORT_PIECES, self.max_len)),
        )
        self.encode = encoding(self.encoder)
        self.work = job.work_dir / model.name

    @functools.cached_property
    def onnx_files(self) -> dict[str, Path]:
        """The model's SavedModel as ONNX, fp32 and int8 (converted once per bench run)."""
        from vbert.model.onnx import export_onnx

        log.info("%s: converting to ONNX", self.model.name)
        return export_onnx(self.model.saved_model, self.work / "onnx")

    def flops_of(self, texts: list[str]) -> float:
        width = self.encode(texts)["input_ids"].shape[1]
        return len(texts) * classifier_flops(self.model.config, width, len(self.model.serving.labels))

    @contextlib.contextmanager
    def server(self, precision: str, batching: bool) -> Iterator:
        folder = server_folder(self.model, precision, self.work / "served")
        name = f"server-{precision}-batching-{'on' if batching else 'off'}.log"
        log.info("%s: starting the server (%s, batching %s)", self.model.name, precision, "on" if batching else "off")
        arguments = ["--backend", "openvino", "--model-dir", str(folder), "--poll-seconds", "0"]
        arguments += ["--request-timeout-ms", str(BENCH_REQUEST_TIMEOUT_MS)]  # a whole batch-100 BERT-base request
        arguments += [] if batching else ["--disable-batching"]
        with running_server(arguments, self.work / name) as server:
            yield server, RestClient(server.url, "vbert")

    @contextlib.contextmanager
    def teacher_server(self) -> Iterator:
        """The teacher's SavedModel in our server's TensorFlow backend, batching off: the paper's way."""
        arguments = ["--backend", "tensorflow", "--model-dir", str(self.job.teacher_dir), "--poll-seconds", "0"]
        arguments += ["--disable-batching", "--warm-up-rows", ""]
        log.info("%s: starting the teacher's server (TensorFlow, fp32, batching off)", self.model.name)
        with running_server(arguments, self.work / "server-teacher.log") as server:
            yield server, RestClient(server.url, self.job.teacher_dir.name)

    def test_f1(self, probabilities: np.ndarray) -> float:
        from vbert.pipeline.ir import task_f1

        gold = np.array([self.model.serving.labels.index(label) for label in self.labels])
        return round(task_f1(self.model.serving, gold, probabilities), 6)

    def served_test_f1(self, client: RestClient) -> float:
        """Test F1 of what the server answers (the shipped model at the chosen precision)."""
        names = self.model.serving.labels
        probabilities = [
            [p["probabilities"][name] for name in names]
            for start in range(0, len(self.texts.real), 64)
            for p in client.classify_texts(self.texts.real[start : start + 64])["predictions"]
        ]
        return self.test_f1(np.array(probabilities))

    def teacher_test_f1(self) -> float:
        """Test F1 of the teacher's SavedModel (TensorFlow, in process)."""
        from vbert.serving.backends import load_version

        teacher = load_version("tensorflow", latest_version(self.job.teacher_dir))
        chunks = [self.texts.real[start : start + 64] for start in range(0, len(self.texts.real), 64)]
        return self.test_f1(
            np.concatenate(
                [teacher.backend.predict(teacher.encoder.encode_items(c).features)["probabilities"] for c in chunks]
            )
        )

    def runners(self, client: RestClient, text_set: str) -> list[Runner]:
        m = self.model
        runners = []
        if text_set == "fixed":
            if self.job.naive:
                runners.append(Runner("naive", "fp32", in_process(naive_predict(m.saved_model), self.encode)))
            runners.append(Runner("tensorflow", "fp32", in_process(tensorflow_predict(m.saved_model), self.encode)))
        for precision, xml in m.variants.items():
            predict = openvino_predict(xml, precision)
            runners.append(Runner("openvino", precision, in_process(predict, self.encode)))
        for precision, model_file in self.onnx_files.items():
            predict = onnxruntime_predict(model_file, precision)
            runners.append(Runner("onnxruntime", precision, in_process(predict, self.encode), ONNXRUNTIME_SPIN_SECONDS))
        runners.append(Runner("http", self.precision, over_http_texts(client), spans=lambda: client.last_timings))
        if m.random_weights:  # a TF-Serving serves the freeze stage's model only
            return runners
        if self.job.tfserving_rest_url:
            rest = RestClient(self.job.tfserving_rest_url, self.job.serving_dir.name)
            runners.append(Runner("tfserving-rest", "fp32", over_predict_api(rest, self.encode)))
        if self.job.tfserving_grpc_target:
            grpc = GrpcClient(self.job.tfserving_grpc_target, self.job.serving_dir.name)
            runners.append(Runner("tfserving-grpc", "fp32", over_predict_api(grpc, self.encode)))
        return runners

    def requests_for(self, batch: int) -> int:
        large = self.model.name == "bert-base" and batch >= 100
        return min(self.job.requests, self.job.large_batch_requests) if large else self.job.requests

    def table3(self, client: RestClient) -> dict[str, list[dict]]:
        tables = {}
        for text_set, texts in self.texts.sets().items():
            runners = self.runners(client, text_set)
            cells = []
            for batch in self.job.batch_sizes:
                windows = request_windows(texts, batch, self.requests_for(batch))
                desc = f"{self.model.name} {text_set} batch {batch}"
                times = time_cells(runners, windows, self.flops_of, desc)
                cells += [cell_result(r, times[r.name], batch) for r in runners]
                log.info(
                    "%s: %s",
                    desc,
                    ", ".join(
                        f"{c['backend']}-{c['precision']} {c['end_to_end']['trimmed_mean']:.4f} s"
                        for c in cells[-len(runners) :]
                    ),
                )
            add_speedups(cells)
            tables[text_set] = cells
        return tables

    def load_grid(self, client: RestClient, batching: bool) -> list[dict]:
        rows = []
        for clients in self.job.clients:
            result = run_load(client.classify_texts, self.texts.real, clients, self.job.load_seconds).as_dict()
            rows.append({"batching": batching, "precision": self.precision, **result})
            log.info("%s: %d client(s), batching %s: %s", self.model.name, clients, batching, result)
        return rows

    def paper_way(self, client: RestClient) -> dict:
        """One client, one text per request, padded to max_seq_length, no server batching (run on a server
        started with batching off)."""
        padded = encoding(self.encoder, pad_to=self.max_len)
        return run_load(
            lambda texts: client.predict(padded(texts)), self.texts.real, 1, self.job.load_seconds
        ).as_dict()

    def served(self, client: RestClient) -> dict:
        """The served path: raw texts, 16 clients (the most of `clients`), dynamic shapes and batching."""
        return run_load(client.classify_texts, self.texts.real, max(self.job.clients), self.job.load_seconds).as_dict()

    def mixed_load(self, server, client: RestClient) -> dict:
        """16 clients with one real text per request, alone and beside 2 clients sending max-size requests (256
        texts of 14.5k characters), /healthz probed throughout: head-of-line blocking, if any, shows here."""
        texts = [item if isinstance(item, str) else " ".join(item) for item in self.texts.real]
        result = run_mixed_load(
            client.classify_texts,
            self.texts.real,
            client.classify_texts,
            max_size_texts(texts, 512),
            f"{server.url}/healthz",
            self.job.load_seconds,
        )
        log.info("%s: mixed-size load: %s", self.model.name, result)
        return result

    def soak(self, client: RestClient, pid: int) -> dict:
        warm = run_load(client.classify_texts, self.texts.real, max(self.job.clients), min(10.0, self.job.soak_seconds))
        after_warm_up = resident_bytes(pid)
        result = run_load(client.classify_texts, self.texts.real, max(self.job.clients), self.job.soak_seconds)
        at_end = resident_bytes(pid)
        return {
            **result.as_dict(),
            "warm_up_errors": warm.errors,
            "rss_after_warm_up_mb": round(after_warm_up / 1e6, 1),
            "rss_at_end_mb": round(at_end / 1e6, 1),
            "rss_growth_percent": round(100 * (at_end - after_warm_up) / after_warm_up, 2),
        }

    def run(self) -> dict:
        started = time.perf_counter()
        result: dict = {
            "random_weights": self.model.random_weights,
            "config": {
                k: getattr(self.model.config, k) for k in ("num_hidden_layers", "hidden_size", "intermediate_size")
            },
            "max_seq_length": self.max_len,
            "flops_per_sequence_at_max_seq_length": classifier_flops(
                self.model.config, self.max_len, len(self.model.serving.labels)
            ),
            "server_precision": self.precision,
            "precisions": sorted(self.model.variants),
        }
        with self.server(self.precision, batching=True) as (server, client):
            result["table3"] = self.table3(client)
            result["load"] = self.load_grid(client, True)
            served = {f"served_{self.precision}": max(result["load"], key=lambda row: row["clients"])}
            result["mixed_load"] = self.mixed_load(server, client)
            result["soak"] = self.soak(client, server.pid)
            shipped_f1 = None if self.model.random_weights else self.served_test_f1(client)
        with self.server(self.precision, batching=False) as (server, client):
            result["load"] += self.load_grid(client, False)
            paper = {f"paper_way_{self.precision}": self.paper_way(client)}
        if self.precision != "fp32":
            with self.server("fp32", batching=True) as (server, client):
                served["served_fp32"] = self.served(client)
            with self.server("fp32", batching=False) as (server, client):
                paper["paper_way_fp32"] = self.paper_way(client)
        if not self.model.random_weights:
            with self.teacher_server() as (server, client):
                paper["paper_way_teacher_fp32"] = self.paper_way(client)
            teacher_config = BertConfig.from_json(latest_version(self.job.teacher_dir) / "assets" / "bert_config.json")
            result["teacher"] = {
                "num_hidden_layers": teacher_config.num_hidden_layers,
                "test_f1": self.teacher_test_f1(),
                "served_test_f1": shipped_f1,
            }
        result["real_texts"] = {**paper, **served}
        result["minutes"] = round((time.perf_counter() - started) / 60, 1)
        return result


def run_bench(job: BenchJob, keep: Callable[[dict], None] | None = None) -> dict:
    """Measure every model of `job.models`; returns everything measured (the report is made from it). `keep` is
    given the results so far after each model, so a failure later does not lose them."""
    pipeline = pipeline_model(job.serving_dir, job.ir_dir)
    precision = chosen_precision(job, job.serving_dir.name)
    test = read_split(split_file(job.task_dir, "test"))
    real = test.items()
    measurements = [measured_ceilings()]
    results: dict = {"machine": machine_and_runtimes(), "skipped": skipped(job), "models": {}}
    for name in job.models:
        calibration = real[:CALIBRATION_TEXTS] if "int8" in precision else None
        model = (
            pipeline
            if name == PIPELINE_MODEL
            else random_model(name, pipeline, job.seq_length, job.work_dir, calibration)
        )
        bench = ModelBench(job, model, server_precision(precision, model), real, test.labels)
        results["models"][name] = bench.run()
        measurements.append(measured_ceilings())
        if keep:
            keep({**results, "ceiling_measurements_gflops": measurements, "partial": True})
    results["ceiling_measurements_gflops"] = measurements
    results["ceilings_gflops"] = highest_ceilings(measurements)
    add_ceiling_shares(results, results["ceilings_gflops"])
    return results


def measured_ceilings() -> dict[str, float]:
    log.info("measuring this machine's matrix-multiply ceilings")
    ceilings = ceilings_gflops()
    log.info("ceilings (GFLOP/s): %s", ceilings)
    return ceilings


def skipped(job: BenchJob) -> list[str]:
    """Backends not measured, and why."""
    notes = []
    if not job.tfserving_rest_url:
        notes.append("tfserving-rest: bench.tfserving_rest_url is empty (no TF-Serving to measure)")
    if not job.tfserving_grpc_target:
        notes.append("tfserving-grpc: bench.tfserving_grpc_target is empty (no TF-Serving to measure)")
    if not job.naive:
        notes.append("naive: bench.naive is false")
    return notes


def machine_and_runtimes() -> dict:
    """What the numbers were measured on, with the runtimes' versions."""
    import openvino
    import tensorflow as tf

    return {**measure.machine(), "openvino": openvino.__version__, "tensorflow": tf.__version__}


def keep_partial(path: Path, so_far: dict) -> None:
    """The results of the models measured so far, in case a later one fails (removed when the bench completes)."""
    write_json(path, so_far)
    log.info("measured so far (%s): %s", ", ".join(so_far["models"]), path)


def require_inputs(job: BenchJob) -> None:
    for path in (job.serving_dir, job.teacher_dir, job.ir_dir, job.task_dir):
        if not path.exists():
            raise InputError(f"{path}: missing; `dvc repro ir` makes the bench's inputs")
