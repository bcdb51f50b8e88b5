"""Mixed precision for training: bfloat16 compute where the hardware has it, float32 master weights and losses.

`auto` picks `bf16` on a CPU with AVX512_BF16 or AMX (the x86 instructions that compute bfloat16 products) or on a
GPU of compute capability 8.0 or more (Ampere and later), `fp32` otherwise. Under `bf16` Keras keeps every variable
in float32 and computes layers in bfloat16; the models here compute their losses and their outputs in float32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SETTINGS = ("auto", "bf16", "fp32")
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def gpu_has_bf16() -> bool:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if capability >= (8, 0):
            return True
    return False


def resolve(setting: str, flags: set[str] | None = None) -> str:
    """`bf16` or `fp32` for a params setting (`auto`, `bf16`, `fp32`)."""
    if setting not in SETTINGS:
        raise ValueError(f"mixed precision {setting!r}: choose {', '.join(SETTINGS)}")
    if setting != "auto":
        return setting
    flags = cpu_flags() if flags is None else flags
    return "bf16" if any(f in flags for f in _BF16_CPU_FLAGS) or gpu_has_bf16() else "fp32"


@contextlib.contextmanager
def computing_in(setting: str) -> Iterator[str]:
    """Keras' global dtype policy for `setting` while the block runs (models are built inside it), then the one
    before; yields `bf16` or `fp32`."""
    import keras

    precision = resolve(setting)
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    log.info(
        "mixed precision %s: computing in %s",
        setting,
        "bfloat16 (float32 weights)" if precision == "bf16" else "float32",
    )
    try:
        yield precision
    finally:
        keras.mixed_precision.set_global_policy(before)
