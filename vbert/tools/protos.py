"""Copy TF-Serving's generated API modules, and TensorFlow's protobuf modules they import, into one folder.

The OpenVINO image serves TF-Serving's gRPC API without TensorFlow: its build installs TensorFlow in a throwaway
stage, runs `python -m vbert.tools.protos /protos`, and copies only that folder (a few hundred kB) into the image,
where `tensorflow` is then a namespace package holding nothing but generated protobuf modules.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import click

from vbert.core.cli import setup_logging
from vbert.serving.protos import serving_api

log = logging.getLogger(__name__)

ROOTS = ("tensorflow", "tensorflow_serving")


def generated_modules() -> list[tuple[Path, Path]]:
    """(site-packages folder, relative file) of every generated module `serving_api()` imports."""
    serving_api()
    files = []
    for name, module in sorted(sys.modules.items()):
        if name.split(".")[0] in ROOTS and name.endswith(("_pb2", "_pb2_grpc")):
            depth = name.count(".") + 1
            path = Path(module.__file__)
            files.append((path.parents[depth - 1], path.relative_to(path.parents[depth - 1])))
    return files


def copy_generated_modules(destination: Path) -> int:
    """Copy them under `destination`, keeping their package paths (no `__init__.py`: namespace packages)."""
    count = 0
    for site, relative in generated_modules():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site / relative, target)
        count += 1
    return count


@click.command()
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
def main(destination: Path) -> None:
    """Copy the generated modules the server's gRPC API needs into DESTINATION."""
    setup_logging()
    log.info("copied %d generated modules into %s", copy_generated_modules(destination), destination)


if __name__ == "__main__":
    main()
