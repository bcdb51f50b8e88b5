"""tf.distribute strategies for the pretrain stage: default, mirrored, multi-worker, TPU.

* `default`: one device, no distribution.
* `mirrored`: every local GPU; on a machine without GPUs, the CPU split into `cpu_devices` logical devices
  (useful for tests and for checking a multi-device set-up before renting GPUs).
* `multi-worker`: MultiWorkerMirroredStrategy; the cluster and this process's role come from `TF_CONFIG`.
  Every worker runs the same stage; the chief writes the checkpoints, which all workers read on resume
  (the output directory must be on a file system they share).
* `tpu`: TPUStrategy on the TPU named by `tpu` (a name or grpc:// address; '' = the local TPU VM).

The strategy must be made before TensorFlow touches a device, so make it first.
"""

from __future__ import annotations

import json
import logging
import os

from vbert.core.errors import InputError

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def make_strategy(name: str, cpu_devices: int = 1, tpu: str = ""):
    """The tf.distribute strategy called `name` (see the module docstring)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if not tf.config.list_physical_devices("GPU") and cpu_devices > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise InputError(
                "strategy multi-worker needs TF_CONFIG (the cluster and this worker's task) in the environment"
            )
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])
            log.info("multi-worker: task %s of cluster %s", cluster["task"], cluster["cluster"])
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"TF_CONFIG is not a cluster spec with a task: {error}") from error
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise InputError(f"strategy tpu: no TPU {tpu!r} reachable: {error}") from error
        return tf.distribute.TPUStrategy(resolver)
    raise InputError(f"unknown strategy {name!r}: choose {', '.join(STRATEGIES)}")


def is_chief(strategy) -> bool:
    """Whether this process writes the outputs: always, except for non-chief multi-worker workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0
