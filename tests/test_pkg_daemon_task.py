"""benchmarks/pkg_daemon_task.py: the second public task's rows from a hand-written Packages listing."""

from __future__ import annotations

import importlib.util

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("pkg_daemon_task", REPO / "benchmarks/pkg_daemon_task.py")
task = importlib.util.module_from_spec(spec)
spec.loader.exec_module(task)

LISTING = """Package: foo-server
Source: foo
Description: serve foo requests
Description-md5: aaa
Tag: interface::daemon, network::server,
 role::program

Package: foo-client
Source: foo (1.2-1)
Description: talk to a foo server
Description-md5: bbb
Tag: role::program

Package: libfoo1
Description: foo library
Description-md5: ccc
Tag: role::shared-lib

Package: foo-server
Description: a second record of foo-server (a later list): ignored
Description-md5: aaa
Tag: role::program
"""
LONG = {
    "aaa": "serve foo requests\n The foo daemon answers requests\n .\n from many clients on port 7 all day long.",
    "bbb": "talk to a foo server\n A command line client that sends requests to any foo daemon it finds nearby.",
}


def test_programs_only_labelled_by_the_daemon_tag_long_descriptions_joined_split_by_source():
    rows = task.task_rows(LISTING, LONG)
    found = {text: (label, split) for split, pairs in rows.items() for label, text in pairs}
    server = "serve foo requests . The foo daemon answers requests from many clients on port 7 all day long."
    client = "talk to a foo server . A command line client that sends requests to any foo daemon it finds nearby."
    assert set(found) == {server, client}  # the library is no program; the second foo-server record is ignored
    assert found[server][0] == "daemon" and found[client][0] == "other"
    assert found[server][1] == found[client][1] == task.split_of("foo")  # one source package, one split


def test_short_descriptions_are_left_out_and_splits_are_stable():
    rows = task.task_rows(LISTING, {})  # synopses alone: under MIN_WORDS words
    assert not any(rows.values())
    assert [task.split_of(name) for name in ("a", "b", "c")] == [task.split_of(name) for name in ("a", "b", "c")]
    shares = [task.split_of(f"pkg{i}") for i in range(2000)]
    assert 0.65 < shares.count("train") / 2000 < 0.75 and 0.12 < shares.count("test") / 2000 < 0.18
