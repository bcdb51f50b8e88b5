"""Recipes (vbert.tools.recipe): params.yaml keys only, every value passing the stages' checks, DVC's -S syntax."""

from __future__ import annotations

import pytest
import yaml

from stages.params import problems
from tests.helpers import REPO
from vbert.core.errors import InputError
from vbert.core.params import ParamsFile
from vbert.tools.recipe import applied, dvc_value, read_recipe, set_flags

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[path.stem for path in RECIPES])
def test_every_recipe_sets_known_keys_to_values_every_stage_accepts(recipe, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    merged = tmp_path / "params.yaml"
    merged.write_text(yaml.safe_dump(applied(params, read_recipe(recipe)), sort_keys=False))
    assert problems(ParamsFile.load(str(merged))) == []


def test_a_key_params_yaml_lacks_is_refused():
    with pytest.raises(InputError, match=r"recipe key pretrain\.learning_rat: params\.yaml has no such key"):
        applied({"pretrain": {"learning_rate": 1}}, {"pretrain.learning_rat": 2})
    with pytest.raises(InputError, match="recipe key vocabb"):
        applied({"vocab": "unused"}, {"vocabb": "default"})


def test_values_are_written_as_dvc_takes_them(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("vocab: default\nmsl512: false\npretrain:\n  steps: [0, 800]\n  lr: 1.0e-4\n  none: []\n")
    assert set_flags(recipe) == [
        "-S",
        "vocab=default",
        "-S",
        "msl512=false",
        "-S",
        "pretrain.steps=[0,800]",
        "-S",
        "pretrain.lr=0.0001",
        "-S",
        "pretrain.none=[]",
    ]
    assert dvc_value(True) == "true"


def test_a_malformed_recipe_is_one_clear_error_naming_the_file(tmp_path, caplog):
    from click.testing import CliRunner

    from vbert.tools.recipe import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("finetune: [unclosed\n", encoding="utf-8")
    result = CliRunner().invoke(main, [str(bad)])
    assert result.exit_code == 2 and not isinstance(result.exception, InputError)  # no traceback
    assert f"recipe: {bad}: cannot read the recipe" in caplog.text
