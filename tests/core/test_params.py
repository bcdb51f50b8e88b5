"""params.yaml errors name the file, the line and the key; keys no stage reads are refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO
from vbert.core.errors import InputError
from vbert.core.params import load_section

PARAMS = """\
vnlp:
  corpus: docs
tfrecords:
  max_seq_length: 128
  masked_lm_prob: 1.5
  dupe_factor: ten
  msl512: yes please
  batch_sizes: [1, 0]
  models: [bert-base, gpt]
  seconds: -1
"""


@pytest.fixture
def section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS, encoding="utf-8")
    return load_section("tfrecords", path)


def test_bounds_are_keywords_and_errors_name_the_line(section):
    with pytest.raises(InputError, match=r"params.yaml:5: tfrecords.masked_lm_prob = 1.5: must be in \(0, 1\)"):
        section.probability("masked_lm_prob", min_open=True, max_open=True)
    with pytest.raises(InputError, match=r"params.yaml:4: tfrecords.max_seq_length = 128: must be in \[8, 64\]"):
        section.integer("max_seq_length", min=8, max=64)
    assert section.integer("max_seq_length", min=8, max=512) == 128
    with pytest.raises(InputError, match=r"params.yaml:10: tfrecords.seconds = -1: must be in \[1, ∞\)"):
        section.number("seconds", min=1)
    with pytest.raises(InputError, match=r"seconds = -1: must be in \(-1, ∞\)"):
        section.number("seconds", min=-1, min_open=True)


def test_integer_and_boolean_types(section):
    with pytest.raises(InputError, match=r"params.yaml:6: tfrecords.dupe_factor = 'ten': must be an integer"):
        section.integer("dupe_factor", min=1)
    with pytest.raises(InputError, match=r"params.yaml:7: tfrecords.msl512 = 'yes please': must be true or false"):
        section.boolean("msl512")


def test_missing_key_and_section(section, tmp_path):
    with pytest.raises(InputError, match=r"params.yaml:3: tfrecords.random_seed is missing"):
        section["random_seed"]
    with pytest.raises(InputError, match="no section 'vocab:'"):
        load_section("vocab", tmp_path / "params.yaml")


def test_lists_of_integers_and_names(section):
    with pytest.raises(
        InputError, match=r"params.yaml:8: tfrecords.batch_sizes = \[1, 0\]: every entry must be an integer >= 1"
    ):
        section.integers("batch_sizes", min=1)
    assert section.integers("batch_sizes", min=0) == (1, 0)
    with pytest.raises(InputError, match=r"params.yaml:9: .*unknown gpt; choose from bert-base, tiny"):
        section.choices("models", ("bert-base", "tiny"))


def test_a_misspelt_key_stops_the_stage_with_its_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  epochs: 2\n  learning_rte: 5.0e-5\n", encoding="utf-8")
    unknown = r"params.yaml:3: finetune.learning_rte: unknown key; known keys: epochs$"
    with pytest.raises(InputError, match=unknown), load_section("finetune", path) as p:
        p.integer("epochs", min=1)
    path.write_text("finetune:\n  epochs: 2\n  learning_rte: 5.0e-5\n  learning_rate: 1\n", encoding="utf-8")
    with (
        pytest.raises(
            InputError, match=r"params.yaml:3: finetune.learning_rte: unknown key; did you mean learning_rate"
        ),
        load_section("finetune", path) as p,
    ):
        p.integer("epochs", min=1), p.number("learning_rate", min=0)


def test_a_misspelt_key_is_named_where_the_stage_asks_for_the_right_one(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  epochs: 2\n  learning_rte: 5.0e-5\n", encoding="utf-8")
    with (
        pytest.raises(
            InputError, match=r"params.yaml:3: finetune.learning_rte: unknown key; did you mean learning_rate"
        ),
        load_section("finetune", path) as p,
    ):
        p.number("learning_rate", min=0)


def test_an_error_inside_the_block_is_not_hidden_by_the_key_check(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("ir:\n  precision: fp64\n  extra: 1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"ir.precision = 'fp64': must be one of"), load_section("ir", path) as p:
        p.choice("precision", ("fp32", "bf16"))


def test_one_value_for_the_makefile():
    result = subprocess.run(
        [sys.executable, "-m", "vbert.core.params", "freeze.model_name"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "vbert"
    result = subprocess.run(
        [sys.executable, "-m", "vbert.core.params", "freeze.nope"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2 and "no key freeze.nope" in result.stderr
