"""What a newcomer's first commands rely on in the repository itself: make's targets and git's ignore rules."""

from __future__ import annotations

import subprocess

from tests.helpers import REPO


def ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0


def test_the_full_data_is_ignored_but_its_dvc_pointer_is_not():
    """`make data-full` runs `dvc add data/full`, which DVC refuses when git ignores data/full.dvc."""
    assert ignored("data/full/docs.txt.gz")
    assert not ignored("data/full.dvc")


def test_make_help_lists_the_two_commands_and_every_described_target():
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    targets = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    described = {
        line.split(":")[0] for line in (REPO / "Makefile").read_text().splitlines() if ":" in line and "## " in line
    }
    assert {"demo", "test", "help"} <= targets and targets == {t for t in described if not t.startswith("\t")}
