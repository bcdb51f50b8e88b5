"""The ingest stage: a folder tree of documents (HTML, Markdown, reStructuredText, PDF, text, JSON lines, gzipped
or not) into the corpus format the vnlp stage reads (one sentence per line, a blank line between documents).

Two passes over the files, spread over all cores, in a fixed order (so the output does not depend on the number
of workers): the first reads each file into documents (`vbert.text.documents`), cuts their prose into sentences
(`vbert.text.sentences`) and spools them to disk, counting in how many documents each line appears; the second
writes every document that is not an exact duplicate of an earlier one, without its boilerplate lines (a line found
in `boilerplate_min_documents` documents or more: navigation, footers, licence notices). Memory holds one
fingerprint per distinct line, never the corpus.

Every file under the input folder is in the manifest with one status: `read`; `skipped` (a kind this stage does not
read, an image or a stylesheet, or left out by `exclude`, or a symbolic link to a folder already walked: links are
followed once, so a loop ends); `empty` (no text); `too_large` (over `max_file_bytes`, after gzip decoding, which
streams and stops there); or `failed` (a broken file, with the reason). Only `failed` counts toward
`max_failed_fraction`; the stage also stops when nothing usable is left. No corpus line is longer than
`max_line_chars` (longer ones are cut at white space, never dropped), so memory stays flat whatever the files hold.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

from tqdm import tqdm

from vbert.core import params as knob
from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.core.parallel import default_workers, ordered_map
from vbert.text.corpus import write_documents
from vbert.text.documents import NotRead, kind_of, read_documents, suffix_of
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
    max_failed_fraction: float = knob.probability("stop if more than this share of the files are broken")
    max_file_bytes: int = knob.integer("a file larger than this (after gzip decoding) is left out as too_large", min=1)
    max_line_chars: int = knob.integer("longer corpus lines are cut at white space into lines this long", min=80)
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


STATUSES = ("read", "skipped", "empty", "too_large", "failed")


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


class Found(NamedTuple):
    path: Path
    skipped: str | None = None  # why it is left out before reading (excluded, a link walked already), or None


def walk(root: Path) -> Iterator[Found]:
    """Every file under `root`, sorted, following symbolic links to folders once: a link to a folder already walked
    (a loop, or a second way in) is reported, not walked again; a broken link is reported too."""
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Found]:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            yield Found(folder, f"{folder}: a symbolic link to a folder already walked (a loop, or a second way in)")
            return
        seen.add((info.st_dev, info.st_ino))
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.is_dir():
                yield from visit(entry)
            elif entry.is_file():
                yield Found(entry)
            elif entry.is_symlink():
                yield Found(entry, f"{entry}: a broken symbolic link")
            else:
                yield Found(entry, f"{entry}: not a regular file")

    yield from visit(root)


def find_files(root: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[Found]:
    """Every file under `root` (relative paths sorted), those an include glob misses or an exclude glob hits marked
    as left out."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    found = []
    for item in walk(root):
        relative = item.path.relative_to(root).as_posix()
        if item.skipped is None and (not _matches(relative, include) or _matches(relative, exclude)):
            item = Found(item.path, f"{relative}: left out by ingest.include / ingest.exclude")
        found.append(item)
    return sorted(found, key=lambda item: item.path.relative_to(root).as_posix())


def _fingerprint(line: str) -> bytes:
    return hashlib.blake2b(line.encode(), digest_size=8).digest()


@dataclass(frozen=True)
class FileTask:
    found: Found
    root: Path
    text_field: str
    max_bytes: int
    max_line_chars: int


def _record(task: FileTask) -> dict:
    path = task.found.path
    kind = kind_of(path) or suffix_of(path) or "no extension"
    record = {"path": path.relative_to(task.root).as_posix(), "kind": "no extension" if kind == "txt?" else kind}
    if path.is_file():
        record["bytes"] = path.stat().st_size
    if path.is_file() and record["bytes"] <= task.max_bytes:
        with open(path, "rb") as handle:
            record["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
    return record


def read_file(task: FileTask) -> dict:
    """One file: its manifest record (status, and the reason when it is not `read`), and its documents as corpus
    lines."""
    record = _record(task)
    if task.found.skipped is not None:
        return {**record, "status": "skipped", "reason": task.found.skipped, "documents": []}
    problems: list[str] = []
    try:
        documents = read_documents(task.found.path, task.text_field, task.max_bytes, problems)
        documents = [lines for document in documents if (lines := document_lines(document, task.max_line_chars))]
    except NotRead as error:
        return {**record, "status": error.status, "reason": str(error), "documents": []}
    except InputError as error:
        return {**record, "status": "failed", "reason": str(error), "documents": []}
    except Exception as error:  # a library's own failure on a malformed file: reported, never fatal alone
        reason = f"{task.found.path}: {type(error).__name__}: {error}"
        return {**record, "status": "failed", "reason": reason, "documents": []}
    if not documents:
        return {**record, "status": "empty", "reason": f"{task.found.path}: no text found", "documents": []}
    extra = {"problems": len(problems), "first_problems": problems[:10]} if problems else {}
    return {**record, "status": "read", **extra, "documents": documents}


def largest_groups(records: list[dict], status: str, top: int = 5) -> str:
    """The most common kinds among the records of `status`: "41 .png, 12 .css"."""
    kinds = Counter(r["kind"] for r in records if r["status"] == status)
    shown = {kind: kind if kind.startswith(".") or " " in kind else f".{kind}" for kind in kinds}
    return ", ".join(f"{n} {shown[kind]}" for kind, n in kinds.most_common(top))


def _spool(job: IngestJob, name: str, root: Path, spool: Path, manifest) -> tuple[Counter, dict]:
    """Pass 1 over one input folder: documents to `spool` (JSON lines), line fingerprints counted per document; every
    file to the manifest with its status."""
    files = find_files(root, job.include, job.exclude)
    if not any(f.skipped is None for f in files):
        raise InputError(f"{root}: no file matches include {list(job.include)} (exclude {list(job.exclude)})")
    counts: Counter = Counter()
    statuses: Counter = Counter(dict.fromkeys(STATUSES, 0))
    records, failed = [], []
    tasks = [FileTask(f, root, job.jsonl_text_field, job.max_file_bytes, job.max_line_chars) for f in files]
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
            records.append(result)
            statuses[result["status"]] += 1
            if result["status"] == "failed":
                log.warning("failed: %s", result["reason"])
                failed.append({"path": result["path"], "reason": result["reason"]})
            for lines in documents:
                counts.update({_fingerprint(line) for line in lines})
                out.write(json.dumps(lines) + "\n")
    kinds = Counter(f"kind_{r['kind']}" for r in records if r["status"] == "read")
    groups = {s: largest_groups(records, s) for s in STATUSES if s != "read" and statuses[s]}
    for status, group in groups.items():
        log.info("%s: %s %d files (%s)", name, status, statuses[status], group)
    stats = {"files": len(files), **statuses, **dict(sorted(kinds.items())), "largest_groups": groups}
    return counts, {**stats, "failed_files": failed[:100]}


def _is_punctuation_only(line: str) -> bool:
    """A line without a letter or digit (`}`, `];`, `---`): code or layout, never navigation; not boilerplate."""
    return not any(char.isalnum() for char in line)


def _write_corpus(job: IngestJob, spool: Path, counts: Counter, target: Path) -> dict:
    """Pass 2: the corpus file without duplicate documents and boilerplate lines (lines of punctuation alone, such
    as a code block's `}`, are never boilerplate)."""
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
                kept = [x for x in lines if _is_punctuation_only(x) or _fingerprint(x) not in boilerplate]
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
            failed = files["failed"] / files["files"]
            if written.get("documents", 0) == 0:
                counted = ", ".join(f"{files[s]} {s}" for s in STATUSES if files[s])
                raise InputError(f"{root}: nothing usable left ({files['files']} files: {counted})")
            if failed > job.max_failed_fraction:
                raise InputError(
                    f"{root}: {files['failed']} of {files['files']} files are broken ({failed:.0%}), more "
                    f"than ingest.max_failed_fraction = {job.max_failed_fraction:g}; the warnings above say why"
                )
            log.info("%s: %s", name, metrics[name])
    return metrics
