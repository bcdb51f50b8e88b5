"""Stage params: every section and switch of params.yaml checked before any stage runs, every mistake reported at
once (file:line, key, reason), exit 2 on any.

DVC removes a stage's outputs before it runs the stage's command, so a stage that found its own params wrong would
already have lost its tracked outputs (`dvc exp run -S vocab=bogus` would delete metrics/vocab.json). Every other
stage depends on this one's output, whose bytes never change: it orders the check first without making anything
downstream re-run.
"""

from pathlib import Path

import click

from stages import bench, distill, finetune, freeze, ingest, ir, pretrain, selection, tfrecords, vnlp, vocab
from vbert.core.atomic import write_text
from vbert.core.cli import stage
from vbert.core.params import ParamsError, ParamsFile, check_job, keys_read

STAGES = (ingest, vnlp, vocab, selection, tfrecords, pretrain, finetune, distill, freeze, ir, bench)
JOBS = {module.__name__.rsplit(".", 1)[-1]: module.JOB for module in STAGES}  # stage name -> the job it reads
CHECKED = "params.yaml passed every stage's checks (python -m stages.params)\n"


def problems(params: ParamsFile) -> list[str]:
    """Every problem of every stage's section and switches, and top-level keys that no stage reads."""
    found = [problem for job in JOBS.values() for problem in check_job(job, params)[1]]
    known = set().union(*(keys_read(job) for job in JOBS.values()))
    for key in params.data:
        if key not in known:
            known_keys = ", ".join(sorted(known))
            found.append(f"{params.where(key)}: {key}: unknown key; the sections and switches are {known_keys}")
    return list(dict.fromkeys(found))


@click.command()
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="written (always the same) when all pass")
@stage("params")
def main(params_file: str, out: Path) -> None:
    found = problems(ParamsFile.load(params_file))
    if found:
        raise ParamsError(found)
    write_text(out, CHECKED)


if __name__ == "__main__":
    main()
