"""What a persistent output was made from.

The pretrain and finetune outputs are DVC `persist` outputs: a re-run finds what an earlier run left, so a killed run
resumes. A run with other inputs or settings must not build on them, so each such output records its settings (the
params that shape the result and the digests of its inputs) and is started over when they differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from vbert.core.atomic import write_json

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


def digest(*paths: str | os.PathLike) -> str:
    """SHA-256 over the names and bytes of the given files and of every file under the given directories."""
    hasher = hashlib.sha256()
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            hasher.update(str(path.relative_to(root) if root.is_dir() else path.name).encode() + b"\0")
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    hasher.update(chunk)
    return hasher.hexdigest()


def job_settings(job, leave_out: tuple[str, ...]) -> dict:
    """A dataclass job's fields as JSON values, without those that do not change the result."""
    fields = dataclasses.asdict(job)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items() if k not in leave_out}


def same_settings(folder: Path, settings: dict) -> bool:
    """Whether `folder` recorded exactly `settings`."""
    recorded = folder / SETTINGS_FILE
    return recorded.exists() and json.loads(recorded.read_text(encoding="utf-8")) == json.loads(json.dumps(settings))


def claim(folder: Path, settings: dict) -> None:
    """Keep `folder` if it was made with `settings`; otherwise empty it (saying why) and record them."""
    if folder.exists() and any(folder.iterdir()) and not same_settings(folder, settings):
        log.warning("%s was made from other inputs or settings: starting it over", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / SETTINGS_FILE).exists():
        write_json(folder / SETTINGS_FILE, settings)
