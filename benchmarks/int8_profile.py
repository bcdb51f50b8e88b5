"""Benchmark: where OpenVINO int8-bf16 spends BERT-base's time, per op, against this CPU's int8 and bf16 ceilings.

The bench's BERT-base (random weights, the pipeline model's vocabulary and labels), NNCF-quantised as the bench
quantises it (calibrated on the task's test texts), compiled as the server compiles int8-bf16 (bf16 inference
precision, LATENCY hint) with OpenVINO's per-node profiling (PERF_COUNT) on, reshaped to one static request of
`--rows` texts x `--seq-length` pieces. For every executed node: its type, the kernel it ran (`exec_type`, which ends
in the precision it computed in) and its time; for every matrix multiply (FullyConnected, MatMul) also its FLOPs,
so the report says which multiplies run in int8, which stay in bf16 or fp32, how fast each kind runs against the
ceilings measured in the same run, and how much time goes to everything that is not a multiply (reorders, softmax,
layer norms, GELU, quantise/dequantise). Two variants in one run: the IR as converted, and with keras-hub's
attention projections (Einsum, which NNCF does not quantise) rewritten as MatMuls first (`vbert.model.einsum`).

    make demo
    python benchmarks/int8_profile.py --out benchmarks/results/int8_profile.json

The numbers are for the machine that ran it (named in the report); compare only ratios from one run.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine, openvino_int8_matmul_gops, openvino_matmul_gflops  # noqa: E402
from vbert.bench.models import SIZES, pipeline_model, quantised, random_model  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.model.einsum import einsum_as_matmul  # noqa: E402
from vbert.model.ir_folder import compile_config  # noqa: E402
from vbert.pipeline.bench import CALIBRATION_TEXTS  # noqa: E402
from vbert.text.encoding import Encoder  # noqa: E402
from vbert.text.tasks import read_split, split_file  # noqa: E402
from vbert.text.tokenization import load_tokenizer  # noqa: E402

log = logging.getLogger("benchmark")
MULTIPLIES = ("FullyConnected", "FullyConnectedQuantizedLegacy", "MatMul")
FOLDER = click.Path(path_type=Path, file_okay=False)


def openvino_version() -> str:
    import openvino as ov

    return ov.__version__


def precision_of(exec_type: str) -> str:
    """The precision a kernel computed in, from OpenVINO's exec_type (e.g. 'brgemm_avx512_amx_I8' -> 'i8')."""
    tail = exec_type.rsplit("_", 1)[-1].lower()
    return {"u8": "i8", "i8": "i8", "bf16": "bf16", "f32": "f32", "f16": "f16"}.get(tail, tail)


def multiply_flops(op) -> int:
    """2 x outputs x the contracted length (the first input's last dimension) for a FullyConnected or MatMul."""
    out = op.get_output_partial_shape(0).to_shape()
    contracted = op.input(0).get_partial_shape().to_shape()[-1]
    return 2 * int(np.prod(out)) * int(contracted)


def compiled_int8_bf16(xml: Path, rows: int, seq_length: int):
    """The int8 IR reshaped to one static request, compiled as the server compiles int8-bf16, profiling on."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({port.get_any_name(): [rows, seq_length] for port in model.inputs})
    config = {**compile_config("int8-bf16"), "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES"}
    return core.compile_model(model, "CPU", config)


def multiply_flops_by_node(compiled) -> dict[str, int]:
    """Each multiply node of the compiled model (by its profiling name) and its FLOPs."""
    return {
        op.get_friendly_name(): multiply_flops(op)
        for op in compiled.get_runtime_model().get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) in MULTIPLIES
    }


def profile(compiled, inputs: dict[str, np.ndarray], repeats: int) -> tuple[list[float], dict[str, dict]]:
    """Seconds per inference, and each executed node's median milliseconds over `repeats` (after one warm-up)."""
    request = compiled.create_infer_request()
    request.infer(inputs)
    seconds, per_node = [], defaultdict(list)
    for _ in range(repeats):
        started = time.perf_counter()
        request.infer(inputs)
        seconds.append(time.perf_counter() - started)
        for info in request.profiling_info:
            if info.status == info.Status.EXECUTED:
                per_node[info.node_name].append((info.real_time.total_seconds() * 1000, info.exec_type, info.node_type))
    nodes = {}
    for name, samples in per_node.items():
        _, exec_type, node_type = samples[0]
        nodes[name] = {
            "ms": float(np.median([s[0] for s in samples])),
            "exec_type": exec_type,
            "node_type": node_type,
        }
    return seconds, nodes


def breakdown(nodes: dict[str, dict], flops: dict[str, int]) -> dict:
    """Time by node type and kernel; multiplies by the precision they computed in, with their FLOPs and rate."""
    total_ms = sum(node["ms"] for node in nodes.values())
    by_kind: dict[tuple[str, str], dict] = defaultdict(lambda: {"ms": 0.0, "nodes": 0})
    multiplies: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "gflop": 0.0, "nodes": 0, "examples": []})
    for name, node in nodes.items():
        kind = by_kind[(node["node_type"], node["exec_type"])]
        kind["ms"] += node["ms"]
        kind["nodes"] += 1
        if node["node_type"] in MULTIPLIES and name in flops:
            group = multiplies[f"{node['node_type']} {precision_of(node['exec_type'])}"]
            group["ms"] += node["ms"]
            group["gflop"] += flops[name] / 1e9
            group["nodes"] += 1
            if len(group["examples"]) < 3:
                group["examples"].append(name)
    kinds = [
        {
            "node_type": t,
            "exec_type": e,
            "nodes": v["nodes"],
            "ms": round(v["ms"], 2),
            "share": round(v["ms"] / total_ms, 4),
        }
        for (t, e), v in sorted(by_kind.items(), key=lambda item: -item[1]["ms"])
    ]
    for group in multiplies.values():
        group["gflop_per_s"] = round(group["gflop"] / (group["ms"] / 1000), 1) if group["ms"] else 0.0
        group["share"] = round(group["ms"] / total_ms, 4)
        group["ms"], group["gflop"] = round(group["ms"], 2), round(group["gflop"], 2)
    return {"node_ms_total": round(total_ms, 2), "by_kind": kinds, "multiplies": dict(multiplies)}


def variant_markdown(name: str, variant: dict, ceilings: dict) -> list[str]:
    b = variant["breakdown"]
    mult = b["multiplies"]
    mult_ms = sum(g["ms"] for g in mult.values())
    lines = [
        f"## {name}",
        "",
        f"Wall time per inference **{variant['seconds_median']:.3f} s** = {variant['gop_per_s']:.0f} GOP/s of the "
        f"model's {variant['gflop']:.1f} GFLOP: **{variant['share_of_int8_ceiling']:.0%} of this run's int8 "
        f"ceiling**. Sum of node times {b['node_ms_total']:.0f} ms; multiplies {mult_ms:.0f} ms of it "
        f"({mult_ms / b['node_ms_total']:.0%}).",
        "",
        "| multiplies | nodes | GFLOP | ms | share of time | rate | of its precision's ceiling | e.g. |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for kind, g in sorted(mult.items(), key=lambda item: -item[1]["ms"]):
        ceiling = ceilings.get(kind.rsplit(" ", 1)[-1].replace("i8", "int8"), ceilings["bf16"])
        lines.append(
            f"| {kind} | {g['nodes']} | {g['gflop']} | {g['ms']} | {g['share']:.1%} | {g['gflop_per_s']:.0f} | "
            f"{g['gflop_per_s'] / ceiling:.0%} | {', '.join(g['examples'][:2])} |"
        )
    lines += ["", "| node type | kernel | nodes | ms | share |", "|---|---|---:|---:|---:|"]
    for kind in b["by_kind"][:15]:
        lines.append(
            f"| {kind['node_type']} | {kind['exec_type']} | {kind['nodes']} | {kind['ms']} | {kind['share']:.1%} |"
        )
    return [*lines, ""]


def markdown(result: dict) -> str:
    ceilings = result["ceilings"]
    lines = [
        f"# Where int8-bf16 spends {result['model']}'s time ({result['machine']['cpu']}, "
        f"{result['machine']['cpus']} cores)",
        "",
        f"`python benchmarks/int8_profile.py` — one request of {result['rows']} texts x {result['seq_length']} pieces, "
        f"OpenVINO {result['machine']['openvino']}, int8-bf16 (NNCF as the bench quantises, bf16 around it), "
        f"PERF_COUNT on; median of {result['repeats']} inferences per variant, variants in one run. This run's "
        f"ceilings: int8 {ceilings['int8']:.0f} GOP/s, bf16 {ceilings['bf16']:.0f} GFLOP/s, fp32 "
        f"{ceilings['f32']:.0f} GFLOP/s. Variants: the IR as converted (keras-hub's attention projections are "
        "`Einsum` nodes, which NNCF leaves in floating point) and with those Einsums rewritten as MatMuls before "
        "quantising (`vbert.model.einsum`).",
        "",
    ]
    for name, variant in result["variants"].items():
        lines += variant_markdown(name, variant, ceilings)
    return "\n".join(lines)


def int8_variant(fp32_xml: Path, like, seq_length: int, calibration: list, rewrite: bool, out: Path) -> Path:
    """The fp32 IR quantised by NNCF as the bench does, after `einsum_as_matmul` if `rewrite`."""
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    if rewrite:
        einsum_as_matmul(model)
    ov.save_model(quantised(model, like, seq_length, calibration), str(out), compress_to_fp16=False)
    return out


def measured(compiled, features: dict, repeats: int, int8_ceiling: float) -> dict:
    seconds, nodes = profile(compiled, features, repeats)
    by_node = multiply_flops_by_node(compiled)
    flops = sum(by_node.values())
    median = float(np.median(seconds))
    return {
        "seconds": [round(s, 4) for s in seconds],
        "seconds_median": round(median, 4),
        "gflop": round(flops / 1e9, 2),
        "gop_per_s": round(flops / 1e9 / median, 1),
        "share_of_int8_ceiling": round(flops / 1e9 / median / int8_ceiling, 3),
        "breakdown": breakdown(nodes, by_node),
    }


@click.command()
@click.option("--serving-dir", type=FOLDER, default=REPO / "models/serving/vbert", show_default=True)
@click.option("--ir-dir", type=FOLDER, default=REPO / "models/ir", show_default=True, help="the ir stage's folder")
@click.option("--task-dir", type=FOLDER, default=REPO / "data/sample/pkg_section", show_default=True)
@click.option("--size", type=click.Choice(sorted(SIZES)), default="bert-base", show_default=True)
@click.option("--rows", default=100, show_default=True, help="texts per request (the bench's Table 3 batch)")
@click.option("--seq-length", default=128, show_default=True, help="pieces per text")
@click.option("--repeats", default=5, show_default=True, help="profiled inferences (after one warm-up)")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/int8_profile.json")
def main(
    serving_dir: Path, ir_dir: Path, task_dir: Path, size: str, rows: int, seq_length: int, repeats: int, out: Path
) -> None:
    """Per-op time of int8-bf16 on a random BERT of `--size`, against this run's int8 and bf16 ceilings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not serving_dir.is_dir() or not ir_dir.is_dir():
        raise click.UsageError(f"{serving_dir}, {ir_dir}: the pipeline's models; run `make demo` first")
    like = pipeline_model(serving_dir, ir_dir)
    texts = read_split(split_file(task_dir, "test")).items()
    encoder = Encoder(load_tokenizer(like.assets), seq_length)
    features = encoder.encode_items((texts * (rows // len(texts) + 1))[:rows], pad_to=seq_length).features
    ceilings = {
        "int8": openvino_int8_matmul_gops(),
        "bf16": openvino_matmul_gflops("bf16"),
        "f32": openvino_matmul_gflops("f32"),
    }
    variants = {}
    with tempfile.TemporaryDirectory(prefix="vbert-int8-profile-") as work:
        model = random_model(size, like, seq_length, Path(work))
        for name, rewrite in (("Einsum as converted", False), ("Einsum as MatMul", True)):
            xml = Path(work) / f"int8-{rewrite}.xml"
            int8_variant(model.variants["fp32"], like, seq_length, texts[:CALIBRATION_TEXTS], rewrite, xml)
            compiled = compiled_int8_bf16(xml, rows, seq_length)
            variants[name] = measured(compiled, features, repeats, ceilings["int8"])
            log.info("%s: %.3f s per request", name, variants[name]["seconds_median"])
    result = {
        "model": size,
        "rows": rows,
        "seq_length": seq_length,
        "repeats": repeats,
        "ceilings": {k: round(v, 1) for k, v in ceilings.items()},
        "variants": variants,
        "machine": {**machine(), "openvino": openvino_version()},
    }
    write_result(out, result, markdown)


if __name__ == "__main__":
    main()
