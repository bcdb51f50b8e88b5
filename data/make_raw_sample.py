"""Rebuild data/sample/raw/ (the ingest stage's demo input) from Debian 12 documentation installed under
/usr/share/doc, and from data/sample/informal.txt. Run on a Debian 12 machine with the packages named in
data/sample/raw/PROVENANCE.md installed: python data/make_raw_sample.py"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

DOC = Path("/usr/share/doc")
HERE = Path(__file__).parent
OUT = HERE / "sample" / "raw"

FILES = {  # target under raw/docs -> source under /usr/share/doc (package in the first path part)
    "html/libffi/": "libffi8/html/",  # the libffi manual, one page per file
    "html/users-and-groups.html": "base-passwd/users-and-groups.html",
    "md/zstd-README.md.gz": "zstd/README.md.gz",
    "md/zstd-CONTRIBUTING.md.gz": "zstd/CONTRIBUTING.md.gz",
    "md/zstd-TESTING.md": "zstd/TESTING.md",
    "md/man-db-NEWS.md.gz": "man-db/NEWS.md.gz",
    "md/procps-bugs.md": "procps/bugs.md",
    "md/python3-yaml-README.md": "python3-yaml/README.md",
    "md/libffi-README.md.gz": "libffi8/README.md.gz",
    "rst/jansson-README.rst": "libjansson4/README.rst",
    "rst/yq-README.rst.gz": "yq/README.rst.gz",
    "rst/setuptools-index.rst": "python3-setuptools/index.rst",
    "rst/setuptools-build_meta.rst.gz": "python3-setuptools/build_meta.rst.gz",
    "rst/setuptools-python-2-sunset.rst": "python3-setuptools/python 2 sunset.rst",
    "pdf/shared-mime-info-spec.pdf": "shared-mime-info/shared-mime-info-spec.pdf",
    "pdf/libtasn1.pdf": "libtasn1-doc/libtasn1.pdf",
    "txt/man-db-manual.txt.gz": "man-db/man-db-manual.txt.gz",
    "txt/users-and-groups.txt.gz": "base-passwd/users-and-groups.txt.gz",
}
CHANGELOG_PACKAGES = (
    "zstd",
    "man-db",
    "procps",
    "libffi8",
    "python3-setuptools",
    "yq",
    "libjansson4",
    "git-man",
    "curl",
)
ENTRY = re.compile(r"^(\S+) \(([^)]+)\) [^;]+;.*$")


def changelog_entries(package: str):
    """Debian changelog entries as JSON records: package, version, and the entry's text."""
    text = gzip.decompress((DOC / package / "changelog.Debian.gz").read_bytes()).decode("utf-8")
    entry = None
    for line in text.splitlines():
        if match := ENTRY.match(line):
            entry = {"package": match.group(1), "version": match.group(2), "text": []}
        elif line.startswith(" -- ") and entry is not None:
            yield {**entry, "text": "\n".join(entry["text"]).strip()}
            entry = None
        elif entry is not None:
            entry["text"].append(line.strip(" *"))


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for target, source in FILES.items():
        if target.endswith("/"):
            shutil.copytree(DOC / source, OUT / "docs" / target)
        else:
            (OUT / "docs" / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DOC / source, OUT / "docs" / target)
    (OUT / "docs" / "jsonl").mkdir(parents=True)
    with open(OUT / "docs" / "jsonl" / "debian-changelogs.jsonl", "w", encoding="utf-8") as out:
        for package in CHANGELOG_PACKAGES:
            for record in changelog_entries(package):
                if record["text"]:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    # the informal corpus (fortunes, the Jargon File): one document per line, its sentences in "text"
    (OUT / "informal").mkdir(parents=True)
    documents, current = [], []
    for line in [*(HERE / "sample" / "informal.txt").read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    with open(OUT / "informal" / "informal.jsonl", "w", encoding="utf-8") as out:
        for lines in documents:
            out.write(json.dumps({"text": "\n".join(lines)}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
