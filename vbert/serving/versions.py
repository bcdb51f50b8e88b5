"""Model versions as TF-Serving handles them: serve the highest numbered folder, pick up a new one without a
restart, and refuse a broken one while the old version keeps serving.

The model folder is polled every `poll_seconds` (TF-Serving's --file_system_poll_wait_seconds). A new version is
loaded and warmed up in a worker thread; only then do requests switch to it, and the old version's batcher drains.
A version that fails to load is reported by the status endpoint and retried only when its files change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vbert.model.export import version_folders
from vbert.serving.backends import LoadedModel, load_version
from vbert.serving.batching import Batcher, BatchingParameters

log = logging.getLogger(__name__)


@dataclass
class Served:
    model: LoadedModel
    batcher: Batcher


def _stamp(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)


class ModelVersions:
    def __init__(
        self,
        kind: str,
        model_dir: Path,
        batching: BatchingParameters,
        threads: int = 0,
        poll_seconds: float = 1.0,
        on_batch: Callable[[int, int, float], None] | None = None,
        tfserving_url: str = "",
    ):
        self.tfserving_url = tfserving_url
        self.kind, self.model_dir, self.batching, self.threads = kind, model_dir, batching, threads
        self.poll_seconds = poll_seconds
        self.on_batch = on_batch
        self.current: Served | None = None
        self.failed: dict[int, tuple[float, str]] = {}
        self.poller: asyncio.Task | None = None

    def _serve(self, model: LoadedModel) -> Served:
        batcher = Batcher(model.backend.predict, self.batching, model.config.max_seq_length, self.on_batch)
        batcher.start()
        return Served(model, batcher)

    def load_latest_now(self) -> LoadedModel:
        """The highest version, loaded synchronously (at start-up, where failing is right)."""
        folders = version_folders(self.model_dir)
        if not folders:
            raise FileNotFoundError(f"{self.model_dir}: no numbered version folders")
        return load_version(self.kind, folders[-1], self.threads, self.tfserving_url)

    async def start(self, model: LoadedModel) -> None:
        self.current = self._serve(model)
        if self.poll_seconds > 0:
            self.poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self.poller:
            self.poller.cancel()
        if self.current:
            await self.current.batcher.stop()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll_once()
            except Exception:  # never let a bad folder stop the poller
                log.exception("polling %s failed", self.model_dir)

    async def poll_once(self) -> None:
        """Load the highest version above the served one, if any (skipping unchanged failures)."""
        assert self.current is not None
        for folder in reversed(version_folders(self.model_dir)):
            version = int(folder.name)
            if version <= self.current.model.version:
                return
            stamp = _stamp(folder)
            if version in self.failed and self.failed[version][0] == stamp:
                continue
            try:
                model = await asyncio.to_thread(load_version, self.kind, folder, self.threads, self.tfserving_url)
            except Exception as error:
                self.failed[version] = (stamp, f"{type(error).__name__}: {error}")
                log.error("version %d refused, still serving %d: %s", version, self.current.model.version, error)
                continue
            old, self.current = self.current, self._serve(model)
            self.failed.pop(version, None)
            log.info("now serving version %d (was %d)", version, old.model.version)
            await asyncio.sleep(self.batching.batch_timeout_micros / 1e6 + 0.05)  # let queued requests finish
            await old.batcher.stop()
            return

    def status(self) -> list[dict]:
        """TF-Serving's model_version_status entries."""
        assert self.current is not None
        entries = [
            {
                "version": str(self.current.model.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
        for version, (_, message) in sorted(self.failed.items()):
            entries.append(
                {"version": str(version), "state": "END", "status": {"error_code": "UNKNOWN", "error_message": message}}
            )
        return entries
