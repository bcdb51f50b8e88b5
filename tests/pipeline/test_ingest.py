"""The ingest stage end to end: folders of mixed documents into the corpus format, duplicates and boilerplate
dropped and counted, unreadable files reported, the same output for any number of workers."""

from __future__ import annotations

import gzip
import json

import yaml

from tests.helpers import REPO, run_stage

FOOTER = "Copyright the Example project. All rights reserved."


def write(path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def make_input(root, broken: int = 1):
    docs = root / "docs"
    for i in range(6):  # six pages sharing a footer line: boilerplate; and a code block's closing brace: not
        write(
            docs / f"guide/page{i}.md",
            f"# Page {i}\n\nTopic {i} is explained here. It has detail {i}.\n\n"
            f"```\nif (x{i}) {{\n}}\n```\n\n{FOOTER}\n",
        )
    write(docs / "guide/copy.md", (docs / "guide/page0.md").read_text())  # an exact duplicate document
    write(docs / "notes.rst", "Notes\n=====\n\nThe daemon restarts itself. Logs go to /var/log/x.log.\n")
    write(docs / "skip/old.md", "# Old\n\nExcluded by a glob.\n")
    for i in range(broken):
        write(docs / f"broken{i}.pdf", b"%PDF-1.4 truncated")
    write(root / "informal" / "chat.jsonl", json.dumps({"text": "lol that build broke again. fixed now"}) + "\n")
    return root


def params(tmp_path, **changes) -> str:
    section = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    section.update({"exclude": ["skip/*"], "workers": 1, **changes})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"ingest": section}))
    return str(path)


def ingest(tmp_path, source, out, **changes):
    return run_stage(
        "ingest",
        *("--params", params(tmp_path, **changes), "--input", str(source)),
        *("--out", str(out), "--metrics", str(out.parent / f"{out.name}.json")),
    )


def test_documents_into_the_corpus_format(tmp_path):
    source = make_input(tmp_path / "raw")
    done = ingest(tmp_path, source, tmp_path / "out", max_failed_fraction=0.2)  # 1 of 9 files is broken
    assert done.returncode == 0, done.stderr[-3000:]
    documents = (tmp_path / "out/docs.txt").read_text().split("\n\n")
    assert documents[0].splitlines() == ["Page 0", "Topic 0 is explained here.", "It has detail 0.", "if (x0) {", "}"]
    assert FOOTER not in (tmp_path / "out/docs.txt").read_text()
    assert "Notes\nThe daemon restarts itself.\nLogs go to /var/log/x.log." in (tmp_path / "out/docs.txt").read_text()
    assert "Excluded" not in (tmp_path / "out/docs.txt").read_text()
    assert (tmp_path / "out/informal.txt").read_text() == "lol that build broke again.\nfixed now\n\n"

    metrics = json.loads((tmp_path / "out.json").read_text())["docs"]
    assert metrics["documents"] == 7 and metrics["duplicate_documents"] == 1
    assert metrics["boilerplate_lines"] == 12  # the footer's two sentences in each of the six kept pages
    assert metrics["files"]["failed"] == 1 and metrics["files"]["failed_files"][0]["path"] == "broken0.pdf"
    assert "not a readable PDF" in metrics["files"]["failed_files"][0]["reason"]
    assert metrics["files"]["skipped"] == 1  # skip/old.md, left out by the exclude glob
    manifest = [json.loads(line) for line in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    broken = next(r for r in manifest if r["path"] == "broken0.pdf")
    assert broken["status"] == "failed" and broken["kind"] == "pdf" and len(broken["sha256"]) == 64
    excluded = next(r for r in manifest if r["path"] == "skip/old.md")
    assert excluded["status"] == "skipped" and "left out by ingest.include / ingest.exclude" in excluded["reason"]
    assert {r["status"] for r in manifest if r["path"] not in ("broken0.pdf", "skip/old.md")} == {"read"}
    assert "failed" in done.stderr and "broken0.pdf" in done.stderr


def test_too_many_unreadable_files_stop_the_stage_with_nothing_written(tmp_path):
    source = make_input(tmp_path / "raw", broken=3)
    done = ingest(tmp_path, source, tmp_path / "out", max_failed_fraction=0.2)
    assert done.returncode == 2
    assert "3 of 12 files are broken (25%), more than ingest.max_failed_fraction = 0.2" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()


INCLUDE = ["md/*", "rst/*", "html/libffi/*", "*.jsonl"]


def test_the_output_does_not_depend_on_the_number_of_workers(tmp_path):
    source = REPO / "data/sample/raw"
    one = ingest(tmp_path, source, tmp_path / "one", workers=1, include=INCLUDE)
    two = ingest(tmp_path, source, tmp_path / "two", workers=2, include=INCLUDE)
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    for name in ("docs.txt", "informal.txt", "manifest.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_a_folder_as_it_comes_every_file_accounted_for_in_bounded_memory(tmp_path):
    """What a documentation folder holds besides documents, and what nobody should send: every file gets one
    status, only broken ones count as failures, and nothing unpacks or grows past its limit."""
    docs = tmp_path / "raw/docs"
    write(docs / "guide.md", "# Guide\n\nThe tool reads its configuration at start. It logs to syslog.\n")
    write(docs / "README", "This package ships the tool.\n\nSee the guide for the details.\n")
    write(docs / "NEWS.Debian.gz", gzip.compress(b"The configuration moved to /etc/tool in version 2.\n"))
    write(docs / "logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    write(docs / "style.css", "body { color: red }\n")
    write(docs / "data.json", '{"a": 1}\n')
    write(docs / "stub.html", "<html><body><div></div></body></html>")
    write(docs / "empty.txt", "")
    write(docs / "bomb.txt.gz", gzip.compress(b"\0" * (8 << 20)))  # 8 MB of zeros in 8 kB: over the limit
    write(docs / "one-line.txt", "word " * 100_000)  # a 500,000-character line
    write(docs / "lines.jsonl", '{"text": "A good line."}\n{broken\n{"text": "Another good line."}\n')
    write(docs / "broken.pdf", b"%PDF-1.4 truncated")
    (docs / "loop").symlink_to(docs, target_is_directory=True)  # a symbolic link loop
    (docs / "dangling.md").symlink_to(docs / "gone.md")
    done = ingest(tmp_path, tmp_path / "raw", tmp_path / "out", max_file_bytes=1 << 20, max_line_chars=200)
    assert done.returncode == 0, done.stderr[-3000:]

    manifest = {r["path"]: r for r in map(json.loads, (tmp_path / "out/manifest.jsonl").read_text().splitlines())}
    status = {path: r["status"] for path, r in manifest.items()}
    assert status == {
        "NEWS.Debian.gz": "read",
        "README": "read",
        "bomb.txt.gz": "too_large",
        "broken.pdf": "failed",
        "dangling.md": "skipped",
        "data.json": "skipped",
        "empty.txt": "empty",
        "guide.md": "read",
        "lines.jsonl": "read",
        "logo.png": "skipped",
        "loop": "skipped",
        "one-line.txt": "read",
        "stub.html": "empty",
        "style.css": "skipped",
    }
    assert "a symbolic link to a folder already walked" in manifest["loop"]["reason"]
    assert (
        manifest["lines.jsonl"]["problems"] == 1
        and "lines.jsonl:2: not valid JSON" in (manifest["lines.jsonl"]["first_problems"][0])
    )
    corpus = (tmp_path / "out/docs.txt").read_text()
    assert "A good line." in corpus and "Another good line." in corpus and "This package ships the tool." in corpus
    assert "The configuration moved to /etc/tool in version 2." in corpus
    assert max(map(len, corpus.splitlines())) <= 200
    assert corpus.count("word") == 100_000  # the long line cut into lines, not one word dropped
    files = json.loads((tmp_path / "out.json").read_text())["docs"]["files"]
    assert (files["read"], files["skipped"], files["empty"], files["too_large"], files["failed"]) == (5, 5, 2, 1, 1)
    assert files["largest_groups"]["skipped"] == "1 .md, 1 .json, 1 .png, 1 no extension, 1 .css"
    assert "docs: skipped 5 files (1 .md, 1 .json, 1 .png, 1 no extension, 1 .css)" in done.stderr
