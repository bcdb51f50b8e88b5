"""Build a second real task from Debian's package lists: program description -> does it run as a daemon?

A binary task with a rare positive class, of another kind than pkg_section (8 balanced-ish sections): among the
packages that debtags marks `role::program`, the positive class `daemon` is the ones tagged `interface::daemon`
(services: servers, monitors, schedulers), the rest `other`. Text: the synopsis, " . ", then the long description
joined into one line (pkg_section's format). Split by source package (a stable hash of its name) so that no
package family crosses splits; identical texts are kept once.

    apt-get -o Acquire::Languages=en update   # as root, once: the lists this reads (Debian's apt client)
    python benchmarks/pkg_daemon_task.py --out data/tasks/pkg_daemon

Reads `apt-cache dumpavail` (every configured list, merged; the first record of a package wins) and the long
descriptions of apt's Translation-en lists (joined on Description-md5, as apt does). Writes train.tsv, eval.tsv,
test.tsv (label<TAB>text) and PROVENANCE.md (the lists' dates, the counts). The committed data/tasks/pkg_daemon is
this script's output; fine-tune on it with `-S finetune.task_dir=data/tasks/pkg_daemon
-S finetune.positive_label=daemon`.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click

POSITIVE, NEGATIVE = "daemon", "other"
SPLITS = (("train", 0.70), ("eval", 0.15), ("test", 0.15))
MIN_WORDS = 12  # descriptions shorter than this say too little to classify
LISTS = "/var/lib/apt/lists"


def records(text: str) -> Iterator[dict[str, str]]:
    """The RFC 822 stanzas of a Packages listing (continuation lines kept, joined by newlines)."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            yield fields


def tags(record: dict[str, str]) -> set[str]:
    return {tag.strip() for tag in record.get("Tag", "").replace("\n", " ").split(",") if tag.strip()}


def description_text(description: str) -> str:
    """Synopsis . long description, on one line (a lone '.' marks a paragraph break in Debian's format)."""
    synopsis, _, body = description.partition("\n")
    lines = [line.strip() for line in body.splitlines()]
    words = " ".join(line for line in lines if line and line != ".")
    return f"{synopsis.strip()} . {words}".replace("\t", " ").strip()


def split_of(source: str) -> str:
    """train, eval or test, by a stable hash of the source package's name."""
    share = int.from_bytes(hashlib.blake2b(source.encode(), digest_size=8).digest(), "big") / 2**64
    for name, fraction in SPLITS:
        if share < fraction:
            return name
        share -= fraction
    return SPLITS[-1][0]


def translations() -> dict[str, str]:
    """Description-md5 -> the English description (synopsis and long description) of apt's Translation-en lists."""
    found = {}
    for path in sorted(Path(LISTS).glob("*_i18n_Translation-en*")):
        text = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True, text=True
        ).stdout
        for record in records(text):
            if "Description-md5" in record and "Description-en" in record:
                found.setdefault(record["Description-md5"], record["Description-en"])
    return found


def task_rows(listing: str, long_descriptions: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """(label, text) rows per split."""
    seen_packages, seen_texts = set(), set()
    rows: dict[str, list[tuple[str, str]]] = {name: [] for name, _ in SPLITS}
    for record in records(listing):
        name = record["Package"]
        found = tags(record)
        if name in seen_packages or "role::program" not in found or "Description" not in record:
            continue
        seen_packages.add(name)
        text = description_text(long_descriptions.get(record.get("Description-md5", ""), record["Description"]))
        if len(text.split()) < MIN_WORDS or text in seen_texts:
            continue
        seen_texts.add(text)
        source = record.get("Source", name).split()[0]
        label = POSITIVE if "interface::daemon" in found else NEGATIVE
        rows[split_of(source)].append((label, text))
    return rows


def list_dates() -> list[str]:
    """The Date line of every apt list's Release file (provenance)."""
    dates = []
    for path in sorted(Path(LISTS).glob("*InRelease")):
        date = next((line for line in path.read_text(errors="replace").splitlines() if line.startswith("Date:")), "")
        dates.append(f"{path.name}: {date[5:].strip()}")
    return dates


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="the task folder to write")
def main(out: Path) -> None:
    listing = subprocess.run(["apt-cache", "dumpavail"], check=True, capture_output=True, text=True).stdout
    long_descriptions = translations()
    if not long_descriptions:
        raise click.ClickException(f"no Translation-en list in {LISTS}: run `apt-get -o Acquire::Languages=en update`")
    rows = task_rows(listing, long_descriptions)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, found in rows.items():
        (out / f"{split}.tsv").write_text(
            "label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in found), encoding="utf-8"
        )
        counts[split] = Counter(label for label, _ in found)
    lines = [
        "# pkg_daemon: Debian program description -> daemon or other",
        "",
        f"Built by `python benchmarks/pkg_daemon_task.py --out {out}` from `apt-cache dumpavail` and apt's "
        "Translation-en lists (debtags: role::program; positive: interface::daemon). Split by source package.",
        "",
        "| split | daemon | other |",
        "|---|---|---|",
        *(f"| {split} | {c[POSITIVE]} | {c[NEGATIVE]} |" for split, c in counts.items()),
        "",
        "apt lists read:",
        *(f"- {line}" for line in list_dates()),
        "",
    ]
    (out / "PROVENANCE.md").write_text("\n".join(lines), encoding="utf-8")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
