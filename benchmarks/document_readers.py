"""Benchmark: why the ingest stage reads HTML with trafilatura and PDF with pdfminer.six, on the committed sample.

* HTML (data/sample/raw/docs/html: libffi's manual, as texinfo writes it, every page with navigation): the ingest
  reader against the page's whole text (lxml's text_content, what a plain HTML-to-text gives). Scored by the
  navigation lines kept ("Next:", "Previous:", "Up:", "Contents", "Index") and the words kept.
* PDF (data/sample/raw/docs/pdf): the ingest reader (pdfminer.six's layout analysis, hyphens at line ends undone)
  against pypdf's text extraction. Scored by the share of words that are English dictionary words or words of the
  sample's other documents (broken or glued words are neither), words found, and seconds.

    python benchmarks/document_readers.py     # writes benchmarks/results/document_readers.{json,md}
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402
from vbert.text.documents import read_documents  # noqa: E402

SAMPLE = REPO / "data/sample/raw/docs"
NAVIGATION = re.compile(r"^(Next|Previous|Prev|Up):|^(Contents|Index)$", re.MULTILINE)
WORD = re.compile(r"[A-Za-z]{2,}")


def ingest_text(path: Path) -> str:
    return "\n".join(block.text for document in read_documents(path) for block in document)


def whole_page_text(path: Path) -> str:
    import lxml.html

    return lxml.html.fromstring(path.read_bytes()).text_content()


def pypdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(path.read_bytes())).pages)


def known_words() -> set[str]:
    """English dictionary words (symspellpy's frequency list) and the words of the sample's text documents."""
    import importlib.resources

    dictionary = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    words = {line.split()[0] for line in dictionary.read_text().splitlines() if line.strip()}
    for path in SAMPLE.glob("txt/*"):
        words |= {w.lower() for w in WORD.findall(ingest_text(path))}
    return words


def html_scores(read) -> dict:
    pages = sorted(SAMPLE.glob("html/**/*.html"))
    texts = [read(page) for page in pages]
    return {
        "pages": len(pages),
        "navigation_lines": sum(len(NAVIGATION.findall(t)) for t in texts),
        "words": sum(len(WORD.findall(t)) for t in texts),
    }


def pdf_scores(read, vocabulary: set[str]) -> dict:
    started = time.perf_counter()
    texts = [read(path) for path in sorted(SAMPLE.glob("pdf/*.pdf"))]
    seconds = time.perf_counter() - started
    words = [w.lower() for t in texts for w in WORD.findall(t)]
    return {
        "words": len(words),
        "known_word_share": round(sum(w in vocabulary for w in words) / max(1, len(words)), 4),
        "seconds": round(seconds, 2),
    }


def markdown(results: dict) -> str:
    html, pdf = results["html"], results["pdf"]
    lines = [
        f"# Document readers ({results['machine']['cpu']})",
        "",
        "`python benchmarks/document_readers.py`, on data/sample/raw/docs.",
        "",
        f"HTML ({next(iter(html.values()))['pages']} pages of libffi's manual):",
        "",
        "| reader | navigation lines kept | words |",
        "|---|---:|---:|",
        *(f"| {name} | {s['navigation_lines']} | {s['words']} |" for name, s in html.items()),
        "",
        "PDF (the sample's two specifications):",
        "",
        "| reader | words | dictionary or corpus words | seconds |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {s['words']} | {100 * s['known_word_share']:.1f}% | {s['seconds']} |"
            for name, s in pdf.items()
        ),
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/document_readers.json")
def main(out: Path) -> None:
    vocabulary = known_words()
    results = {
        "machine": machine(),
        "html": {
            "ingest (trafilatura)": html_scores(ingest_text),
            "whole page (lxml text_content)": html_scores(whole_page_text),
        },
        "pdf": {
            "ingest (pdfminer.six, hyphens joined)": pdf_scores(ingest_text, vocabulary),
            "pypdf": pdf_scores(pypdf_text, vocabulary),
        },
    }
    click.echo(write_result(out, results, markdown))


if __name__ == "__main__":
    main()
