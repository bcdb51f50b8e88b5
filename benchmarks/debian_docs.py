"""Benchmark: the ingest stage on documentation folders as Debian installs them, which nobody here wrote or picked.

Each folder is a package's documentation as it comes (every file the package installs there: pages, images,
stylesheets, READMEs, changelogs, symbolic links), fetched with apt's own client at a pinned version, so anyone can
rebuild it; it stays out of git (benchmarks/work/debian_docs/, a few MB each). Kinds: DocBook HTML and a PDF manual
(valgrind), hand-written HTML and Markdown (nodejs-doc), gtk-doc HTML (libxslt1-dev), reStructuredText with Sphinx
roles and directives (CMake's help, cmake-data), Sphinx HTML with its rST sources (python-jinja2-doc).

Per folder: the files by status, documents and sentences written, lines over 1,000 characters, lines that still
hold markup (by pattern: Sphinx roles, rST directives, HTML tags, Markdown tables and links), seconds and the
stage's peak memory (`/usr/bin/time -v`).

    python benchmarks/debian_docs.py       # fetches what is missing, writes benchmarks/results/debian_docs.{json,md}
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vbert.bench.measure import machine  # noqa: E402
from vbert.bench.report import write_result  # noqa: E402

WORK = REPO / "benchmarks/work/debian_docs"
FOLDERS = {  # name -> (package, version, the folder inside the package that is its documentation)
    "valgrind": ("valgrind", "1:3.19.0-1", "usr/share/doc/valgrind"),
    "nodejs": ("nodejs-doc", "18.20.4+dfsg-1~deb12u3", "usr/share/doc/nodejs"),
    "libxslt": ("libxslt1-dev", "1.1.35-1+deb12u4", "usr/share/doc/libxslt1-dev"),
    "cmake-help": ("cmake-data", "3.25.1-1", "usr/share/cmake-3.25/Help"),
    "jinja2": ("python-jinja2-doc", "3.1.2-1+deb12u3", "usr/share/doc/python-jinja2-doc"),
}
MARKUP = {  # what a reader never sees, by pattern, on a corpus line
    "sphinx role": re.compile(r":[a-z_]+(:[a-z_]+)?:`"),
    "rst directive": re.compile(r"^\.\. [a-z-]+::"),
    "html tag": re.compile(r"<(br|p|div|span|table|tr|td|li|ul|/a|/p|/div|/span|/td|/li)\s*/?>|<(a|img|div) [a-z]+="),
    "markdown table": re.compile(r"^\|.*\|\s*$"),
    "markdown link": re.compile(r"\]\((https?://|#|\.{0,2}/|[\w./-]+\.(md|html)\b)"),
}
LONG_LINE = 1000


def fetch(name: str) -> dict:
    """The package's documentation folder under WORK/<name>/docs (downloaded and unpacked once), its provenance."""
    package, version, inside = FOLDERS[name]
    target = WORK / name
    provenance = target / "provenance.json"
    if provenance.exists():
        return json.loads(provenance.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["apt-get", "download", "-qq", f"{package}={version}"], cwd=scratch, check=True)
        (deb,) = Path(scratch).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(scratch) / "root")], check=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(scratch) / "root" / inside, target / "docs", symlinks=True)
        record = {
            "package": package,
            "version": version,
            "deb": deb.name,
            "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
            "folder": inside,
        }
    provenance.write_text(json.dumps(record, indent=2) + "\n")
    return record


def run_ingest(name: str, out: Path) -> dict:
    """The ingest stage on the folder with the repository's params (every file included), timed, peak RSS read."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    params.update(input_dir=str(WORK / name), include=["*"], exclude=[], max_failed_fraction=1.0)
    (out / "params.yaml").write_text(yaml.safe_dump({"ingest": params}))
    command = [sys.executable, "-m", "stages.ingest", "--params", str(out / "params.yaml")]
    command += ["--input", str(WORK / name), "--out", str(out / "ingested"), "--metrics", str(out / "metrics.json")]
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        return {"error": done.stderr[-2000:], "seconds": round(seconds, 1)}
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    metrics = json.loads((out / "metrics.json").read_text())["docs"]
    lines = (out / "ingested/docs.txt").read_text(encoding="utf-8").splitlines()
    leaked = {kind: sum(bool(pattern.search(line)) for line in lines) for kind, pattern in MARKUP.items()}
    examples = {
        kind: next((line[:160] for line in lines if pattern.search(line)), None) for kind, pattern in MARKUP.items()
    }
    files = metrics["files"]
    return {
        "files": files["files"],
        "status": {s: files[s] for s in ("read", "skipped", "empty", "too_large", "failed")},
        "largest_groups": files["largest_groups"],
        "failed_files": files["failed_files"][:10],
        "documents": metrics.get("documents", 0),
        "sentences": metrics.get("sentences", 0),
        "lines_over_1000": sum(len(line) > LONG_LINE for line in lines),
        "longest_line": max(map(len, lines), default=0),
        "markup_lines": leaked,
        "markup_examples": {k: v for k, v in examples.items() if v},
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def table(results: dict, folders: dict) -> list[str]:
    out = [
        "| folder | package | files | read | skipped | empty | too large | failed | documents | sentences "
        "| lines > 1,000 | markup lines | s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in folders.items():
        source = results["provenance"][name]
        if "error" in r:
            out.append(f"| {name} | {source['package']} {source['version']} | stage failed: see JSON |")
            continue
        s = r["status"]
        markup = ", ".join(f"{kind} {n}" for kind, n in r["markup_lines"].items() if n) or "0"
        out.append(
            f"| {name} | {source['package']} {source['version']} | {r['files']} | {s['read']} | {s['skipped']} | "
            f"{s['empty']} | {s['too_large']} | {s['failed']} | {r['documents']:,} | {r['sentences']:,} | "
            f"{r['lines_over_1000']} | {markup} | {r['seconds']} | {r['peak_rss_mb']} |"
        )
    return out


def markdown(results: dict) -> str:
    out = [
        f"# The ingest stage on Debian's documentation folders ({results['machine']['cpu']})",
        "",
        "`python benchmarks/debian_docs.py`: each folder as the package installs it (apt-get download, dpkg-deb -x).",
        "Markup lines are counted by pattern, so text that is about markup (Jinja's docs on `<br>` tags) counts too.",
        "",
        *table(results, results["folders"]),
    ]
    if results.get("before"):
        out += ["", f"Before ({results['before']['label']}):", "", *table(results, results["before"]["folders"])]
    out += ["", "Largest groups of files not read, per folder:", ""]
    for name, r in results["folders"].items():
        groups = "; ".join(f"{status}: {group}" for status, group in r.get("largest_groups", {}).items())
        out.append(f"- {name}: {groups or 'none'}")
    return "\n".join(out) + "\n"


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/results/debian_docs.json")
@click.option("--folder", "names", multiple=True, type=click.Choice(list(FOLDERS)), help="default: all")
@click.option("--before", type=click.Path(path_type=Path), help="an earlier run's JSON, shown beside this one")
@click.option("--before-label", default="an earlier commit", help="what the earlier run measured")
def main(out: Path, names: tuple[str, ...], before: Path | None, before_label: str) -> None:
    names = names or tuple(FOLDERS)
    provenance = {name: fetch(name) for name in names}
    folders = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"vbert-{name}-") as scratch:
            folders[name] = run_ingest(name, Path(scratch))
        print(name, json.dumps(folders[name])[:400], flush=True)
    results = {"machine": machine(), "provenance": provenance, "folders": folders}
    if before is not None:
        results["before"] = {"label": before_label, "folders": json.loads(before.read_text())["folders"]}
    print(write_result(out, results, markdown))


if __name__ == "__main__":
    main()
