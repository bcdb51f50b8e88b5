"""params.yaml errors name the file, the line and the key."""

from __future__ import annotations

import pytest

from vbert.errors import InputError
from vbert.params import load_section

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


def test_probability_out_of_range_names_line(section):
    with pytest.raises(InputError, match=r"params.yaml:5: tfrecords.masked_lm_prob = 1.5: must be in \(0, 1\)"):
        section.probability("masked_lm_prob", open_low=True, open_high=True)


def test_integer_and_boolean_types(section):
    with pytest.raises(InputError, match=r"params.yaml:6: tfrecords.dupe_factor = 'ten': must be an integer"):
        section.integer("dupe_factor", 1)
    with pytest.raises(InputError, match=r"params.yaml:7: tfrecords.msl512 = 'yes please': must be true or false"):
        section.boolean("msl512")
    with pytest.raises(InputError, match=r"max_seq_length = 128: must be in \[8, 64\]"):
        section.integer("max_seq_length", 8, 64)


def test_missing_key_and_section(section, tmp_path):
    with pytest.raises(InputError, match=r"params.yaml:3: tfrecords.random_seed is missing"):
        section["random_seed"]
    with pytest.raises(InputError, match="no section 'vocab:'"):
        load_section("vocab", tmp_path / "params.yaml")


def test_lists_of_integers_and_names(section):
    with pytest.raises(
        InputError, match=r"params.yaml:8: tfrecords.batch_sizes = \[1, 0\]: every entry must be an integer >= 1"
    ):
        section.integers("batch_sizes")
    assert section.integers("batch_sizes", low=0) == (1, 0)
    with pytest.raises(InputError, match=r"params.yaml:9: .*unknown gpt; choose from bert-base, tiny"):
        section.choices("models", ("bert-base", "tiny"))
    with pytest.raises(InputError, match=r"params.yaml:10: tfrecords.seconds = -1: must be a number >= 1"):
        section.number("seconds", 1)
