"""A recipe: a params file of values that differ from params.yaml (recipes/*.yaml), applied with `dvc exp run -S`.

    python -m vbert.tools.recipe recipes/every-arm.yaml                       # prints the -S flags (shell-quoted)
    python -m vbert.tools.recipe recipes/every-arm.yaml --exp-run -- finetune  # runs dvc exp run with them

Keys are params.yaml's: a switch at the top (`vocab: default`), a section's knobs nested under it. Values are
written as DVC writes them back (lists as [0,800], booleans as true/false).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from vbert.core.cli import stage
from vbert.core.errors import InputError


def read_recipe(path: Path) -> dict[str, Any]:
    """The recipe's values by dotted key (`pretrain.learning_rate`), in file order."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read the recipe ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe is a mapping of params.yaml's keys")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= {f"{key}.{knob}": setting for knob, setting in value.items()}
        else:
            flat[key] = value
    return flat


def dvc_value(value: Any) -> str:
    """A value as `dvc exp run -S` takes it (YAML flow style: [0,800], true, 1.0e-4)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(dvc_value(item) for item in value) + "]"
    return str(value)


def set_flags(path: Path) -> list[str]:
    return [item for key, value in read_recipe(path).items() for item in ("-S", f"{key}={dvc_value(value)}")]


def applied(params: dict, recipe: dict[str, Any]) -> dict:
    """params.yaml's data with the recipe's values in place; a key params.yaml does not have is an error."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in params.items()}
    for key, value in recipe.items():
        section, _, knob = key.partition(".")
        holder = merged if not knob else merged.get(section)
        name = knob or section
        if not isinstance(holder, dict) or name not in holder:
            raise InputError(f"recipe key {key}: params.yaml has no such key")
        holder[name] = value
    return merged


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dvc_args", nargs=-1)
@click.option("--exp-run", is_flag=True, help="run `dvc exp run` with the flags, then DVC_ARGS (e.g. -- finetune)")
@stage("recipe")
def main(recipe: Path, dvc_args: tuple[str, ...], exp_run: bool) -> None:
    flags = set_flags(recipe)
    if not exp_run:
        click.echo(shlex.join([*flags, *dvc_args]))
        return
    command = [str(Path(sys.executable).parent / "dvc"), "exp", "run", *flags, *dvc_args]
    click.echo(shlex.join(command), err=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
