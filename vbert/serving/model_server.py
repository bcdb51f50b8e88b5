"""The serving core: the models, their versions as TF-Serving handles them, and what a request may ask of them.

REST and gRPC are thin layers over `ModelServer`: `predict` (token ids in, probabilities and logits out),
`classify` (texts in, tokenised as in training), `metadata` (the signature), `status` (the versions).

Each model serves the highest numbered version folder under its base path (TF-Serving's `latest` policy) and
follows the folders on disk, polled every `poll_seconds`: a new version is loaded and warmed up off the event loop,
then takes the requests while the old one finishes its own; a removed version gives way to the highest that is
left (a rollback is deleting the bad version); a version that fails to load is reported and retried only when its
files change, while the one before keeps serving. Several models come from TF-Serving's `models.config` text format.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vbert.model.export import OUTPUT_NAMES, version_folders
from vbert.serving.backends import LoadedModel
from vbert.serving.batching import Batcher, BatchingParameters
from vbert.serving.errors import Code, ServingError, invalid, not_found
from vbert.serving.timing import span
from vbert.text.encoding import INPUT_NAMES, Item

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
Loader = Callable[[Path], LoadedModel]  # a version folder -> the model, loaded and warmed up


@dataclass(frozen=True)
class ModelSource:
    name: str
    base_path: Path


def read_model_config(path: Path) -> list[ModelSource]:
    """The models of a TF-Serving `models.config` (text format `model_config_list { config { name base_path } }`)."""
    from google.protobuf import text_format

    from vbert.serving.protos import serving_api

    config = serving_api().model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except (OSError, text_format.ParseError) as error:
        raise ValueError(f"{path}: not a TF-Serving model config: {error}") from error
    sources = [ModelSource(c.name, (path.parent / c.base_path).resolve()) for c in config.model_config_list.config]
    if not sources:
        raise ValueError(f"{path}: no model in model_config_list")
    if len({s.name for s in sources}) != len(sources):
        raise ValueError(f"{path}: a model name appears twice")
    return sources


@dataclass
class Version:
    model: LoadedModel
    batcher: Batcher


def _stamp(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)


@dataclass
class ServedModel:
    """One model: the version it serves and the versions that failed to load."""

    source: ModelSource
    load: Loader
    batching: BatchingParameters
    on_batch: Callable[[int, int, float], None]
    current: Version | None = None
    failed: dict[int, tuple[float, str]] = field(default_factory=dict)

    def on_disk(self) -> dict[int, Path]:
        base = self.source.base_path
        return {int(f.name): f for f in version_folders(base)} if base.is_dir() else {}

    def _serve(self, model: LoadedModel) -> Version:
        batcher = Batcher(model.backend.predict, self.batching, model.config.max_seq_length, self.on_batch)
        batcher.start()
        return Version(model, batcher)

    def load_now(self) -> None:
        """The highest version, loaded synchronously (at start-up, where failing is right)."""
        folders = self.on_disk()
        if not folders:
            raise FileNotFoundError(f"{self.source.base_path}: no numbered version folders for {self.source.name}")
        self.current = Version(self.load(folders[max(folders)]), None)  # the batcher starts with the event loop

    def start(self) -> None:
        if self.current is not None and self.current.batcher is None:
            self.current = self._serve(self.current.model)

    async def poll(self) -> None:
        """Serve the highest loadable version on disk (a new one, or the highest left after a removal)."""
        folders = self.on_disk()
        serving = self.current.model.version if self.current else None
        for version in sorted(folders, reverse=True):
            if version == serving:
                return
            stamp = _stamp(folders[version])
            if version in self.failed and self.failed[version][0] == stamp:
                continue
            try:
                model = await asyncio.to_thread(self.load, folders[version])
            except Exception as error:
                self.failed[version] = (stamp, f"{type(error).__name__}: {error}")
                log.error("%s version %d refused, still serving %s: %s", self.source.name, version, serving, error)
                continue
            self.failed.pop(version, None)
            await self._switch(self._serve(model))
            return
        if serving is not None and serving not in folders:  # every version gone, or none left that loads
            log.warning("%s version %d was removed and none is left to serve", self.source.name, serving)
            await self._switch(None)

    async def _switch(self, new: Version | None) -> None:
        old, self.current = self.current, new
        log.info(
            "%s: now serving version %s (was %s)",
            self.source.name,
            new and new.model.version,
            old and old.model.version,
        )
        if old is not None and old.batcher is not None:
            await old.batcher.stop()  # requests already queued on it finish there

    def status(self, version: int | None = None) -> list[dict]:
        """TF-Serving's model_version_status entries."""
        entries = []
        if self.current is not None:
            entries.append(_entry(self.current.model.version, "AVAILABLE", "OK", ""))
        entries += [_entry(v, "END", "UNKNOWN", message) for v, (_, message) in sorted(self.failed.items())]
        if version is not None:
            entries = [e for e in entries if e["version"] == str(version)]
            if not entries:
                raise not_found(f"Could not find version {version} of model {self.source.name}")
        return entries


def _entry(version: int, state: str, code: str, message: str) -> dict:
    return {"version": str(version), "state": state, "status": {"error_code": code, "error_message": message}}


# ---- requests -----------------------------------------------------------------------------------------------

INLINE_SIZE = 8192  # bytes, characters or token ids: work this small runs on the event loop (well under 1 ms)


def _values(tensor) -> int:
    """About how many values a tensor as sent holds (an array, or rows of lists), without reading them all."""
    if isinstance(tensor, np.ndarray):
        return tensor.size
    if isinstance(tensor, list) and tensor and isinstance(tensor[0], list):
        return len(tensor) * max(len(tensor[0]), 1)
    return INLINE_SIZE + 1  # anything else: off the loop, where checking it may take long


def _characters(item) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, list | tuple):
        return sum(len(part) if isinstance(part, str) else INLINE_SIZE + 1 for part in item)
    return INLINE_SIZE + 1


async def off_loop(size: int, function: Callable, *args):
    """`function(*args)` in a worker thread, so that large work never holds up the event loop; work of at most
    INLINE_SIZE runs right here instead, since handing it to a thread and back costs more than doing it."""
    if size <= INLINE_SIZE:
        return function(*args)
    return await asyncio.to_thread(function, *args)


@dataclass(frozen=True)
class Limits:
    max_request_rows: int  # rows (texts) per request; more can never be accepted: 413
    request_timeout: float  # seconds a request may take; what is not computed by then never is (504)


def validated_inputs(inputs: dict, model: LoadedModel, limits: Limits) -> tuple[dict[str, np.ndarray], list[int]]:
    """int32 [rows, seq] arrays from what a client sent (lists or arrays), checked; rows longer than max_seq_length
    are cut to it (the last kept token set to [SEP]) and their indices returned."""
    missing = [n for n in INPUT_NAMES if n not in inputs or inputs[n] is None]
    extra = sorted(set(inputs) - set(INPUT_NAMES))
    if missing or extra:
        raise invalid(f"inputs must be exactly {', '.join(INPUT_NAMES)}; missing {missing}, unknown {extra}")
    arrays = {}
    for name in INPUT_NAMES:
        try:
            array = np.asarray(inputs[name])
        except (ValueError, OverflowError) as error:
            raise invalid(f"{name}: not a rectangular tensor of integers ({error})") from error
        if array.ndim != 2 or array.shape[1] == 0:
            raise invalid(f"{name}: expected shape [batch, seq], got {list(array.shape)}")
        if array.dtype.kind not in "iu":
            raise invalid(f"{name}: expected integers (DT_INT32), got {array.dtype.name} values")
        arrays[name] = array
    shapes = {name: arrays[name].shape for name in INPUT_NAMES}
    if len(set(shapes.values())) != 1:
        raise invalid(f"inputs must have one shape; got {shapes}")
    rows, seq = shapes["input_ids"]
    if rows > limits.max_request_rows:
        raise ServingError(Code.TOO_LARGE, f"{rows} rows in one request; the limit is {limits.max_request_rows}")
    ids = arrays["input_ids"]
    if ids.min() < 0 or ids.max() >= model.vocab_size:
        raise invalid(f"input_ids: values must lie in [0, {model.vocab_size}); got {ids.min()}..{ids.max()}")
    for name in ("input_mask", "segment_ids"):
        if not np.isin(arrays[name], (0, 1)).all():
            raise invalid(f"{name}: values must be 0 or 1")
    arrays = {k: v.astype(np.int32) for k, v in arrays.items()}
    max_len, truncated = model.config.max_seq_length, []
    if seq > max_len:
        truncated = [i for i in range(rows) if arrays["input_mask"][i, max_len:].any()]
        arrays = {k: np.ascontiguousarray(v[:, :max_len]) for k, v in arrays.items()}
        sep = model.encoder.tokenizer.vocab.ids["[SEP]"]
        for i in truncated:
            arrays["input_ids"][i, max_len - 1] = sep
    return arrays, truncated


def check_signature(signature_name: str | None) -> None:
    if signature_name not in (None, "", SIGNATURE):
        raise invalid(f'Serving signature name: "{signature_name}" not found in signature def')


@dataclass
class Prediction:
    outputs: dict[str, np.ndarray]
    version: int
    truncated: list[int]


class ModelServer:
    """Every served model, by name."""

    def __init__(self, models: dict[str, ServedModel], limits: Limits, poll_seconds: float):
        self.models, self.limits, self.poll_seconds = models, limits, poll_seconds
        self.poller: asyncio.Task | None = None

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.models[name]

    def version(self, name: str, version: int | None) -> Version:
        served = self.model(name).current
        if served is None:
            raise not_found(f"Servable not found for request: Latest({name}): no version is loaded")
        if version is not None and version != served.model.version:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return served

    @property
    def ready(self) -> bool:
        return all(m.current is not None for m in self.models.values())

    async def start(self) -> None:
        for model in self.models.values():
            model.start()
        if self.poll_seconds > 0:
            self.poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self.poller:
            self.poller.cancel()
        for model in self.models.values():
            if model.current is not None and model.current.batcher is not None:
                await model.current.batcher.stop()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            for model in self.models.values():
                try:
                    await model.poll()
                except Exception:  # never let a bad folder stop the poller
                    log.exception("polling %s failed", model.source.base_path)

    async def predict(self, name: str, version: int | None, inputs: dict, timeout: float | None = None) -> Prediction:
        """Probabilities and logits for token ids (as a client sent them: lists or arrays)."""
        served = self.version(name, version)
        with span("encode"):
            size = sum(_values(v) for v in inputs.values())
            arrays, truncated = await off_loop(size, validated_inputs, inputs, served.model, self.limits)
        return await self._run(served, arrays, truncated, timeout)

    async def classify(self, name: str, items: list[Item], timeout: float | None = None) -> Prediction:
        """Probabilities for texts (or [text_a, text_b] pairs), encoded as the finetune stage encoded its task."""
        served = self.version(name, None)
        if not items:
            raise invalid('"texts" must be a non-empty list of strings or of [text_a, text_b] pairs')
        if len(items) > self.limits.max_request_rows:
            raise ServingError(
                Code.TOO_LARGE, f"{len(items)} texts in one request; the limit is {self.limits.max_request_rows}"
            )
        try:
            with span("encode"):
                encoded = await off_loop(sum(map(_characters, items)), served.model.encoder.encode_items, items)
        except ValueError as error:
            raise invalid(
                f'"texts" must be a non-empty list of strings or of [text_a, text_b] pairs ({error})'
            ) from error
        return await self._run(served, encoded.features, encoded.truncated, timeout)

    async def _run(self, served: Version, arrays: dict, truncated: list[int], timeout: float | None) -> Prediction:
        budget = self.limits.request_timeout if timeout is None else min(timeout, self.limits.request_timeout)
        outputs = await served.batcher.submit(arrays, budget)
        return Prediction({k: outputs[k] for k in OUTPUT_NAMES}, served.model.version, truncated)

    def metadata(self, name: str, version: int | None):
        """TF-Serving's SignatureDefMap of the served version (a protobuf message)."""
        from vbert.serving.protos import serving_api

        served = self.version(name, version)
        api = serving_api()
        signatures = api.get_model_metadata_pb2.SignatureDefMap()
        signature = signatures.signature_def[SIGNATURE]
        signature.method_name = "tensorflow/serving/predict"
        for names, dtype, columns, role in (
            (INPUT_NAMES, "DT_INT32", -1, signature.inputs),
            (OUTPUT_NAMES, "DT_FLOAT", len(served.model.config.labels), signature.outputs),
        ):
            for tensor in names:
                info = role[tensor]
                info.name = (
                    f"{SIGNATURE}_{tensor}:0"
                    if role is signature.inputs
                    else f"StatefulPartitionedCall:{names.index(tensor)}"
                )
                info.dtype = api.types_pb2.DataType.Value(dtype)
                info.tensor_shape.dim.add(size=-1)
                info.tensor_shape.dim.add(size=columns)
        return served.model.version, signatures
