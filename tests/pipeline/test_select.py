"""The select stage for real: the packaged MiniLM embeds a small corpus and a task, and keeps the nearest part."""

from __future__ import annotations

import json

import pytest

from tests.helpers import from_params, write_lines
from vbert.core.errors import InputError
from vbert.pipeline.select import SelectJob, run_select
from vbert.text.corpus import CorpusReader

pytestmark = pytest.mark.xdist_group("heavy")

COOKING = [
    "Whisk the eggs with sugar until pale.",
    "Bake the cake in a hot oven for thirty minutes.",
    "Season the soup with salt and simmer it gently.",
]
NETWORKING = [
    "The router forwards IP packets between subnets.",
    "Configure the firewall to drop incoming TCP connections.",
    "The DNS server resolves host names to addresses.",
]


def corpus(tmp_path):
    clean = tmp_path / "clean"
    lines = []
    for topic in (COOKING, NETWORKING, COOKING[::-1], NETWORKING[::-1]):
        lines += [*topic, ""]
    write_lines(clean / "corpus.txt", lines)
    (clean / "info.json").write_text(json.dumps({"corpus": "docs"}))
    task = tmp_path / "task"
    write_lines(
        task / "train.tsv",
        ["label\ttext", "net\tiptables rules block ssh traffic", "net\tping reports the network latency of a host"],
    )
    return clean, task


def job(tmp_path, **changes) -> SelectJob:
    clean, task = corpus(tmp_path)
    return from_params(SelectJob, "select", clean_dir=clean, task_dir=task, out_dir=tmp_path / "out", **changes)


def test_a_fraction_keeps_the_passages_nearest_the_task_texts(tmp_path):
    metrics = run_select(job(tmp_path, fraction=0.5, passage_words=1))
    assert (metrics["passages"], metrics["selected_passages"], metrics["task_texts"]) == (12, 6, 2)
    kept = [line for document in CorpusReader([tmp_path / "out/corpus.txt"]) for line in document]
    assert sorted(kept) == sorted(NETWORKING * 2)  # the networking half, not the cooking one
    assert metrics["similarity_selected_mean"] > metrics["similarity_all_mean"]
    info = json.loads((tmp_path / "out/info.json").read_text())
    assert info["corpus"] == "docs" and info["selection"]["selected_passages"] == 6


def test_neighbouring_passages_of_one_document_stay_one_document(tmp_path):
    run_select(job(tmp_path, fraction=0.5, passage_words=1))
    documents = list(CorpusReader([tmp_path / "out/corpus.txt"]))
    assert sorted(map(sorted, documents)) == [sorted(NETWORKING)] * 2


def test_fraction_one_is_the_whole_corpus_unchanged(tmp_path):
    metrics = run_select(job(tmp_path, fraction=1))
    assert (tmp_path / "out/corpus.txt").read_bytes() == (tmp_path / "clean/corpus.txt").read_bytes()
    assert metrics["fraction"] == 1.0


def test_a_fraction_that_keeps_no_passage_is_refused_before_any_embedding(tmp_path):
    with pytest.raises(InputError, match=r"select.fraction = 0.01: keeps none of the corpus's 12 passages"):
        run_select(job(tmp_path, fraction=0.01, passage_words=1))
    assert not (tmp_path / "out").exists()
