"""params.yaml read through the knobs a job declares: every mistake of a section at once, each naming the file, the
line and the key; numbers as people and DVC write them; switches as top-level keys; keys no knob reads refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from tests.helpers import REPO
from vbert.core import params as knob
from vbert.core.errors import InputError
from vbert.core.params import ParamsError, job_from, keys_read, knob_fields, params_help, read_job


@dataclass(frozen=True)
class Inner:
    dupe_factor: int = knob.integer("passes", min=1)
    msl512: bool = knob.boolean("a switch inside a nested config", switch="msl512")


@dataclass(frozen=True)
class ToyJob:
    SECTION: ClassVar[str] = "toy"
    out_dir: Path  # given, not a knob
    max_seq_length: int = knob.integer("pieces", min=8, max=512)
    masked_lm_prob: float = knob.probability("share", min_open=True, max_open=True)
    learning_rate: float = knob.number("rate", min=0, max=1, min_open=True)
    seeds: tuple[int, ...] = knob.integers("seeds", min=0, distinct=True)
    models: tuple[str, ...] = knob.choices(("bert-base", "tiny"), "models")
    task_dir: Path = knob.path("a folder")
    positive_label: str | None = knob.label("a label")
    variant: str = knob.choice(("default", "unused"), "the vocabulary", switch="vocab")
    inner: Inner = knob.nested()

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.masked_lm_prob * self.max_seq_length < 1:
            yield "masked_lm_prob", "masks no piece at this max_seq_length"


GOOD = """\
vocab: unused
msl512: false
toy:
  max_seq_length: 128
  masked_lm_prob: 0.15
  learning_rate: 5.0e-5
  seeds:
  - 1
  - 2
  models:
  - tiny
  task_dir: data/task
  positive_label: ''
  dupe_factor: 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ParamsError) as caught:
        read_job(ToyJob, path, out_dir=Path("out"))
    return caught.value.problems


def test_a_valid_section_gives_the_job_with_typed_values_nested_configs_and_given_fields(tmp_path):
    job = read_job(ToyJob, write(tmp_path, GOOD), out_dir=Path("out"))
    assert job.out_dir == Path("out") and job.task_dir == Path("data/task")
    assert job.seeds == (1, 2) and job.models == ("tiny",) and job.learning_rate == 5e-5
    assert job.positive_label is None and job.variant == "unused"
    assert job.inner == Inner(dupe_factor=5, msl512=False)


@pytest.mark.parametrize(("written", "value"), [("1e-4", 1e-4), ("5e-05", 5e-5), ("1E-3", 1e-3), (".5", 0.5)])
def test_numbers_as_people_and_dvc_write_them(tmp_path, written, value):
    job = read_job(ToyJob, write(tmp_path, GOOD.replace("5.0e-5", written)), out_dir=None)
    assert job.learning_rate == value


def test_an_integer_written_as_a_whole_float_is_that_integer(tmp_path):
    assert read_job(ToyJob, write(tmp_path, GOOD.replace("128", "1.28e2")), out_dir=None).max_seq_length == 128
    path = write(tmp_path, GOOD.replace("128", "128.5"))
    assert problems_of(path) == [f"{path}:4: toy.max_seq_length = 128.5: must be an integer"]


def test_a_label_written_as_a_number_is_its_text(tmp_path):
    assert read_job(ToyJob, write(tmp_path, GOOD.replace("label: ''", "label: 1")), out_dir=None).positive_label == "1"


def test_strings_that_are_not_numbers_fail_with_the_line_and_the_key(tmp_path):
    path = write(tmp_path, GOOD.replace("5.0e-5", "fast"))
    assert problems_of(path) == [f"{path}:6: toy.learning_rate = 'fast': must be a number"]


def test_every_mistake_of_a_section_is_reported_at_once(tmp_path):
    text = (
        GOOD.replace("vocab: unused", "vocab: bogus")
        .replace("max_seq_length: 128", "max_seq_length: 1024")
        .replace("masked_lm_prob: 0.15", "masked_lm_prob: 1.5")
        .replace("  - 2\n", "  - 1\n")
        .replace("- tiny", "- gpt")
        .replace("dupe_factor: 5", "dupe_factor: ten")
        .replace("learning_rate:", "learning_rte:")
    )
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f"{path}:4: toy.max_seq_length = 1024: must be in [8, 512]",
        f"{path}:5: toy.masked_lm_prob = 1.5: must be in (0, 1)",
        f"{path}:7: toy.seeds = [1, 1]: must not repeat an entry",
        f"{path}:10: toy.models = ['gpt']: unknown gpt; choose from bert-base, tiny",
        f"{path}:1: vocab = 'bogus': must be one of default, unused",
        f"{path}:14: toy.dupe_factor = 'ten': must be an integer",
        f"{path}:6: toy.learning_rte: unknown key; did you mean learning_rate?",
    ]


def test_cross_field_checks_run_once_every_knob_is_valid(tmp_path):
    path = write(tmp_path, GOOD.replace("masked_lm_prob: 0.15", "masked_lm_prob: 0.001"))
    assert problems_of(path) == [f"{path}:5: toy.masked_lm_prob = 0.001: masks no piece at this max_seq_length"]


def test_missing_keys_switches_and_sections_are_named(tmp_path):
    path = write(tmp_path, GOOD.replace("vocab: unused\n", "").replace("  dupe_factor: 5\n", ""))
    assert problems_of(path) == [
        f"{path}: vocab is missing (a top-level switch)",
        f"{path}:2: toy.dupe_factor is missing",
    ]
    path = write(tmp_path, "vocab: unused\nmsl512: true\n")
    assert problems_of(path) == [f"{path}: no section 'toy:' (a mapping) in the params file"]


def test_an_unknown_key_far_from_any_knob_lists_the_known_keys(tmp_path):
    path = write(tmp_path, GOOD + "  colour: blue\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:15: toy.colour: unknown key; known keys: dupe_factor, learning_rate")


def test_the_job_declares_what_it_reads_and_its_help():
    assert keys_read(ToyJob) == {"toy", "vocab", "msl512"}
    assert [k.key for k in knob_fields(ToyJob)][-3:] == ["vocab", "dupe_factor", "msl512"]
    shown = params_help(ToyJob)
    assert "  max_seq_length  integer in [8, 512]: pieces" in shown
    assert "switches (top-level keys: dvc exp run -S KEY=VALUE):\n  vocab" in shown


def test_job_from_a_mapping_checks_as_the_file_does():
    section = {"max_seq_length": 64, "masked_lm_prob": 0.2, "learning_rate": 1e-4, "seeds": [0], "models": ["tiny"]}
    section |= {"task_dir": "t", "positive_label": "", "dupe_factor": 1}
    job = job_from(ToyJob, section, {"vocab": "default", "msl512": True}, out_dir=None)
    assert job.inner.msl512 and job.max_seq_length == 64
    with pytest.raises(InputError, match=r"toy.max_seq_length = 4: must be in \[8, 512\]"):
        job_from(ToyJob, {**section, "max_seq_length": 4}, {"vocab": "default", "msl512": True}, out_dir=None)


def test_not_yaml_and_no_file_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such params file"):
        read_job(ToyJob, tmp_path / "none.yaml")
    with pytest.raises(InputError, match="not valid YAML"):
        read_job(ToyJob, write(tmp_path, "toy: [\n"))


def test_one_value_for_the_makefile():
    result = subprocess.run(
        [sys.executable, "-m", "vbert.core.params", "freeze.model_name"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "vbert"
    result = subprocess.run(
        [sys.executable, "-m", "vbert.core.params", "freeze.nope"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2 and "no key freeze.nope" in result.stderr
