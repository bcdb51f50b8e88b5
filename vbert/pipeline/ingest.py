"""The ingest stage: a folder tree of documents (HTML, Markdown, reStructuredText, PDF, text, JSON lines, gzipped
or not) into the corpus format the vnlp stage reads (one sentence per line, a blank line between documents).

Two passes over the files, spread over all cores, in a fixed order (so the output does not depend on the number
of workers): the first reads each file into documents (`vbert.text.documents`), cuts their prose into sentences
(`vbert.text.sentences`) and spools them to disk, counting in how many documents each line appears; the second
writes every document that is not an exact duplicate of an earlier one, without its boilerplate lines (a line found
in `boilerplate_min_documents` documents or more: navigation, footers, licence notices). Memory holds one
fingerprint per distinct line, never the corpus. A file that cannot be read is skipped and reported (manifest and
metrics, with its path and the reason); the stage fails only when nothing usable is left or more than
`max_failed_fraction` of the files failed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tqdm import tqdm

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.core.parallel import default_workers, ordered_map
from vbert.text.corpus import write_documents
from vbert.text.documents import kind_of, read_documents
from vbert.text.sentences import document_lines

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


CORPORA = ("docs", "informal")  # the input folder's subfolders, written as <name>.txt (vnlp's corpus files)


@dataclass(frozen=True)
class IngestJob:
    SECTION: ClassVar[str] = "ingest"
    out_dir: Path
    input_dir: Path = knob.path("holds docs/ (and informal/): folders of documents, any depth")
    include: tuple[str, ...] = knob.strings("globs on the path under docs/ (or informal/); '*' matches across folders")
    exclude: tuple[str, ...] = knob.strings("globs of files to leave out, e.g. 'archive/*'", empty=True)
    jsonl_text_field: str = knob.text(".jsonl: one document per line, its text in this field", empty=False)
    boilerplate_min_documents: int = knob.integer(
        "a line found in this many documents or more (navigation, footers) is dropped", min=2
    )
    max_failed_fraction: float = knob.probability("stop if more than this share of the files cannot be read")
    workers: int = knob.integer("processes; 0 = every core", min=0)

    @property
    def inputs(self) -> dict[str, Path]:
        """Corpus name (docs, informal) -> its folder of documents."""
        return corpus_inputs(self.input_dir)


def corpus_inputs(input_dir: Path) -> dict[str, Path]:
    """The corpora under `input_dir`: `docs/` (required) and `informal/` (if there)."""
    if not (input_dir / "docs").is_dir():
        raise InputError(f"{input_dir}: no docs/ folder (put the documents to ingest in {input_dir / 'docs'})")
    return {name: input_dir / name for name in CORPORA if (input_dir / name).is_dir()}


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


def find_files(root: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[Path]:
    """Files under `root` whose path relative to it matches an include glob and no exclude glob, sorted."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and _matches(path.relative_to(root).as_posix(), include)
        and not _matches(path.relative_to(root).as_posix(), exclude)
    )


def _fingerprint(line: str) -> bytes:
    return hashlib.blake2b(line.encode(), digest_size=8).digest()


def read_file(task: tuple[Path, Path, str]) -> dict:
    """One file: its manifest record, and its documents as corpus lines (or the reason it was skipped)."""
    path, root, text_field = task
    record = {
        "path": path.relative_to(root).as_posix(),
        "kind": kind_of(path) or "unknown",
        "bytes": path.stat().st_size,
    }
    record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        documents = [lines for lines in map(document_lines, read_documents(path, text_field)) if lines]
    except InputError as error:
        return {**record, "status": "skipped", "reason": str(error), "documents": []}
    except Exception as error:  # a library's own failure on a malformed file: reported, never fatal alone
        return {**record, "status": "skipped", "reason": f"{path}: {type(error).__name__}: {error}", "documents": []}
    if not documents:
        return {**record, "status": "skipped", "reason": f"{path}: no text found", "documents": []}
    return {**record, "status": "read", "documents": documents}


def _spool(job: IngestJob, name: str, root: Path, spool: Path, manifest) -> tuple[Counter, dict]:
    """Pass 1 over one input folder: documents to `spool` (JSON lines), line fingerprints counted per document."""
    files = find_files(root, job.include, job.exclude)
    if not files:
        raise InputError(f"{root}: no file matches include {list(job.include)} (exclude {list(job.exclude)})")
    counts: Counter = Counter()
    stats: dict = Counter(files=len(files))
    skipped = []
    tasks = [(path, root, job.jsonl_text_field) for path in files]
    results = ordered_map(read_file, tasks, default_workers(job.workers))
    with open(spool, "w", encoding="utf-8") as out:
        for result in tqdm(results, total=len(files), desc=f"ingest {name}", unit="file"):
            documents = result.pop("documents")
            manifest.write(
                json.dumps(
                    {"corpus": name, **result, "documents": len(documents), "sentences": sum(map(len, documents))}
                )
                + "\n"
            )
            if result["status"] != "read":
                log.warning("skipped %s", result["reason"])
                stats["failed"] += 1
                skipped.append({"path": result["path"], "reason": result["reason"]})
                continue
            stats[f"kind_{result['kind']}"] += 1
            for lines in documents:
                counts.update({_fingerprint(line) for line in lines})
                out.write(json.dumps(lines) + "\n")
    return counts, {**stats, "skipped": skipped[:100]}


def _write_corpus(job: IngestJob, spool: Path, counts: Counter, target: Path) -> dict:
    """Pass 2: the corpus file without duplicate documents and boilerplate lines."""
    boilerplate = {f for f, n in counts.items() if n >= job.boilerplate_min_documents}
    seen: set[bytes] = set()
    stats = Counter()

    def documents():
        with open(spool, encoding="utf-8") as lines_file:
            for raw in lines_file:
                lines = json.loads(raw)
                digest = hashlib.blake2b("\n".join(lines).encode(), digest_size=16).digest()
                if digest in seen:
                    stats["duplicate_documents"] += 1
                    continue
                seen.add(digest)
                kept = [line for line in lines if _fingerprint(line) not in boilerplate]
                stats["boilerplate_lines"] += len(lines) - len(kept)
                if kept:
                    stats["documents"] += 1
                    stats["sentences"] += len(kept)
                    yield kept

    with open(target, "w", encoding="utf-8") as out:
        write_documents(out, documents())
    stats["bytes"] = target.stat().st_size
    return dict(stats)


def run_ingest(job: IngestJob) -> dict:
    """Write `<name>.txt` per input and `manifest.jsonl` into `job.out_dir`; returns the stage metrics."""
    metrics: dict = {}
    with atomic_dir(job.out_dir) as tmp, open(tmp / MANIFEST, "w", encoding="utf-8") as manifest:
        for name, root in job.inputs.items():
            spool = tmp / f".{name}.spool.jsonl"
            counts, files = _spool(job, name, root, spool, manifest)
            written = _write_corpus(job, spool, counts, tmp / f"{name}.txt")
            spool.unlink()
            metrics[name] = {"files": files, **written}
            failed = files.get("failed", 0) / files["files"]
            if written.get("documents", 0) == 0:
                raise InputError(
                    f"{root}: nothing usable left ({files['files']} files, {files.get('failed', 0)} "
                    f"skipped; see the warnings above)"
                )
            if failed > job.max_failed_fraction:
                raise InputError(
                    f"{root}: {files['failed']} of {files['files']} files could not be read ({failed:.0%}), more "
                    f"than ingest.max_failed_fraction = {job.max_failed_fraction:g}; the warnings above say why"
                )
            log.info("%s: %s", name, metrics[name])
    return metrics
