"""Task files and the scores, on hand-checkable cases."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, write_lines
from vbert.core.errors import InputError
from vbert.text.tasks import read_split, read_task, split_file


def test_errors_name_file_and_line(tmp_path):
    path = write_lines(tmp_path / "train.tsv", ["label\ttext", "a\tfine", "b\ttoo\tmany", "c\t "])
    with pytest.raises(InputError, match=r"train.tsv:3: 3 columns, the header has 2"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "b\t  "])
    with pytest.raises(InputError, match=r"train.tsv:3: empty text"):
        read_split(path)
    write_lines(path, ["label\ttext", "a\tfine", "z\tunseen"])
    with pytest.raises(InputError, match=r"train.tsv:3: label 'z' does not occur in the training split"):
        read_split(path, ["a", "b"])
    write_lines(path, ["category\ttext"])
    with pytest.raises(InputError, match=r"train.tsv:1: header"):
        read_split(path)


def test_the_sample_task_reads():
    splits, labels = read_task(REPO / "data/sample/pkg_section")
    assert labels == ["admin", "devel", "games", "graphics", "net", "science", "sound", "utils"]
    assert [len(splits[s].labels) for s in ("train", "eval", "test")] == [2400, 400, 400]


def write_task(folder, kind: str, rows: dict[str, list], description: str | None = None):
    """train/eval/test in one format: `rows` maps a split to its lines (TSV/CSV text or JSON objects)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        text = "\n".join(json.dumps(line) if kind == "jsonl" else line for line in lines) + "\n"
        (folder / f"{split}.{kind}").write_text(text, encoding="utf-8")
    if description is not None:
        (folder / "task.yaml").write_text(description)
    return folder


def test_csv_and_jsonl_with_named_columns_read_as_the_tsv_does(tmp_path):
    tsv = write_task(
        tmp_path / "tsv",
        "tsv",
        {"train": ["label\ttext", "games\tA game, with blocks.", "net\tA proxy"], "eval": ["label\ttext", "net\tDNS"]},
    )
    csv_rows = ["category,id,description", 'games,1,"A game, with blocks."', "net,2,A proxy"]
    csv_task = write_task(
        tmp_path / "csv",
        "csv",
        {"train": csv_rows, "eval": ["category,id,description", "net,3,DNS"]},
        "label: category\ntext: description\n",
    )
    jsonl = write_task(
        tmp_path / "jsonl",
        "jsonl",
        {
            "train": [{"section": "games", "body": "A game, with blocks."}, {"section": "net", "body": "A proxy"}],
            "eval": [{"section": "net", "body": "DNS", "extra": 1}],
        },
        "label: section\ntext: body\n",
    )
    for task in (tsv, csv_task, jsonl):
        for split in ("train", "eval"):
            assert read_split(split_file(task, split)) == read_split(split_file(tsv, split)), (task, split)
    assert read_split(split_file(csv_task, "train")).texts_a == ["A game, with blocks.", "A proxy"]


def test_pairs_in_csv_and_a_multi_line_csv_text(tmp_path):
    task = write_task(
        tmp_path / "t",
        "csv",
        {"train": ["label,first,second", 'same,"one\ntwo",three', "other,four,five"]},
        "text: first\ntext_b: second\n",
    )
    split = read_split(task / "train.csv")
    assert split.items() == [("one\ntwo", "three"), ("four", "five")]


def test_format_errors_name_file_and_line(tmp_path):
    task = write_task(tmp_path / "j", "jsonl", {"train": [{"label": "a", "text": "x"}]})
    (task / "train.jsonl").write_text('{"label": "a", "text": "x"}\n\n{"label": "b", "txt": "y"}\n[1]\n')
    with pytest.raises(InputError, match=r"train.jsonl:3: no field 'text' \(fields: label, txt\)"):
        read_split(task / "train.jsonl")
    (task / "train.jsonl").write_text('{"label": "a", "text": "x"}\n{"label": "b", "text": \n')
    with pytest.raises(InputError, match=r"train.jsonl:2: not valid JSON"):
        read_split(task / "train.jsonl")
    (task / "train.jsonl").write_text('{"label": "a", "text": ["x"]}\n')
    with pytest.raises(InputError, match=r"train.jsonl:1: text: expected a string, got list"):
        read_split(task / "train.jsonl")

    task = write_task(tmp_path / "c", "csv", {"train": ["cat,body", "a,x", "b,y,z"]}, "label: cat\ntext: body\n")
    with pytest.raises(InputError, match=r"train.csv:3: 3 columns, the header has 2"):
        read_split(task / "train.csv")
    (task / "train.csv").write_text("cat,text\na,x\n")
    with pytest.raises(InputError, match=r"train.csv:1: header \['cat', 'text'\]: no column 'body'"):
        read_split(task / "train.csv")
    (task / "task.yaml").write_text("label: cat\ntexts: body\n")
    with pytest.raises(InputError, match=r"task.yaml: unknown key 'texts'"):
        read_split(task / "train.csv")


def test_one_file_per_split(tmp_path):
    task = write_task(tmp_path / "t", "tsv", {"train": ["label\ttext", "a\tx"]})
    write_task(task, "csv", {"train": ["label,text", "a,x"]})
    with pytest.raises(InputError, match=r"train.tsv and train.csv: keep one train split"):
        split_file(task, "train")
    with pytest.raises(InputError, match=r"no eval split \(expected eval.tsv or eval.csv or eval.jsonl\)"):
        split_file(task, "eval")
