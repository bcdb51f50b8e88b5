"""Rebuild data/sample/ from ../shared/data (see data/README.md). Deterministic: every k-th document/row."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path(__file__).parent / "sample"


def documents(path: Path):
    document: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                document.append(line.rstrip("\n"))
            elif document:
                yield document
                document = []
    if document:
        yield document


def sample_corpus(name: str, every: int, max_lines_per_doc: int, budget: int) -> None:
    written = 0
    with open(OUT / f"{name}.txt", "w", encoding="utf-8") as out:
        for index, document in enumerate(documents(SHARED / "corpus" / f"{name}.txt.gz")):
            if index % every or written >= budget:
                continue
            text = "\n".join(document[:max_lines_per_doc]) + "\n\n"
            out.write(text)
            written += len(text.encode())


def sample_task(rows: dict[str, int]) -> None:
    (OUT / "pkg_section").mkdir(parents=True, exist_ok=True)
    for split, keep in rows.items():
        lines = (SHARED / "tasks" / "pkg_section" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        header, body = lines[0], lines[1:]
        step = max(1, len(body) // keep)
        chosen = body[::step][:keep]
        (OUT / "pkg_section" / f"{split}.tsv").write_text("\n".join([header, *chosen]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    sample_corpus("docs", every=3, max_lines_per_doc=150, budget=1_500_000)
    sample_corpus("informal", every=4, max_lines_per_doc=60, budget=300_000)
    sample_task({"train": 2400, "eval": 400, "test": 400})
