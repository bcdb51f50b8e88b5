"""The vnlp stage on real text: format kept, metrics and audit written, bad input refused cleanly."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, from_params, small_corpus, write_lines
from vbert.core.errors import InputError
from vbert.pipeline.vnlp import VnlpJob, corpus_files, run_vnlp
from vbert.text.corpus import CorpusReader
from vbert.text.spelling import SpellConfig


@pytest.mark.xdist_group("heavy")
def test_vnlp_keeps_the_corpus_format(tmp_path, sample_docs):
    corpus = small_corpus(tmp_path / "docs.txt", sample_docs, documents=30)
    corpus.write_text(corpus.read_text() + "\nWe use kubectl and the filesystemcheck after configuraiton.\n")
    metrics = run_vnlp(
        VnlpJob(
            input_dir=corpus.parent,
            out_dir=tmp_path / "clean",
            corpus="docs",
            spell=from_params(SpellConfig, "vnlp", pair_min_count=5),
            lexicon=None,
            workers=2,
            chunk_documents=5,
            task_dir=REPO / "data/sample/pkg_section",
            task_text_repeat=0,
        )
    )
    before, after = list(CorpusReader([corpus])), list(CorpusReader([tmp_path / "clean" / "corpus.txt"]))
    assert [len(d) for d in before] == [len(d) for d in after]
    assert metrics["documents"] == len(before) == 31 and metrics["lines"] == sum(len(d) for d in before)
    assert after[-1][-1] == "We use kubectl and the file system check after configuration."
    assert metrics["corrections"] >= 1 and metrics["splits"] >= 1 and metrics["protected_tokens"] > 100
    audit = (tmp_path / "clean" / "audit.tsv").read_text().splitlines()
    assert audit[0] == "kind\toriginal\treplacement\tcount"
    assert "correct\tconfiguraiton\tconfiguration\t1" in audit
    info = json.loads((tmp_path / "clean" / "info.json").read_text())
    assert info["corpus"] == "docs" and "task_text" not in info  # without task text, nothing of the task


def test_corpus_switch_files():
    assert [p.name for p in corpus_files(REPO / "data" / "sample", "docs+informal")] == ["docs.txt", "informal.txt"]
    with pytest.raises(InputError, match="unknown corpus 'reddit'"):
        corpus_files(REPO / "data" / "sample", "reddit")


def test_not_utf8_is_refused_without_output(tmp_path):
    corpus = tmp_path / "docs.txt"
    corpus.write_bytes(b"good line\n\nanother doc\n\xff\xfe bad\n")
    with pytest.raises(InputError, match=r"docs.txt:4: not UTF-8: byte 0xff at byte offset 23"):
        run_vnlp(
            VnlpJob(
                input_dir=corpus.parent,
                out_dir=tmp_path / "clean",
                corpus="docs",
                spell=from_params(SpellConfig, "vnlp"),
                lexicon=None,
                chunk_documents=200,
                workers=1,
                task_dir=REPO / "data/sample/pkg_section",
                task_text_repeat=0,
            )
        )
    assert not (tmp_path / "clean").exists()


def test_task_text_joins_the_corpus_train_split_only_repeated(tmp_path, sample_docs):
    corpus = small_corpus(tmp_path / "docs.txt", sample_docs, documents=3)
    task = tmp_path / "task"
    train = ["label\ttext", "games\tA puzzle game . Blocks fall! Clear 3 rows.", "net\tA proxy."]
    write_lines(task / "train.tsv", train)
    write_lines(task / "eval.tsv", ["label\ttext", "games\tEVAL TEXT NEVER USED."])
    job = VnlpJob(
        input_dir=corpus.parent,
        out_dir=tmp_path / "clean",
        corpus="docs",
        spell=from_params(SpellConfig, "vnlp"),
        lexicon=None,
        chunk_documents=2,
        workers=1,
        task_dir=task,
        task_text_repeat=2,
    )
    metrics = run_vnlp(job)
    documents = list(CorpusReader([tmp_path / "clean" / "corpus.txt"]))
    assert metrics["task_documents"] == 4 and len(documents) == 3 + 4
    assert documents[3:] == [["A puzzle game .", "Blocks fall!", "Clear 3 rows."], ["A proxy."]] * 2
    assert "EVAL" not in (tmp_path / "clean" / "corpus.txt").read_text()
    info = json.loads((tmp_path / "clean" / "info.json").read_text())
    assert info["task_text"] == {"task_dir": str(task), "repeat": 2, "documents": 4}
