"""Start the server: `python -m vbert.serving --backend openvino --model-dir models/ir/vbert --port 8501`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vbert.core.cli import setup_logging
from vbert.serving.batching import BatchingParameters

log = logging.getLogger("vbert.serving")


@click.command()
@click.option(
    "--backend", type=click.Choice(["openvino", "tensorflow", "tfserving"]), default="openvino", show_default=True
)
@click.option("--tfserving-url", default="", help="backend tfserving: e.g. http://tfserving:8501/v1/models/vbert")
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="<base>/<model_name>: version folders inside; the highest is served",
)
@click.option("--model-name", default=None, help="defaults to the folder's name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, help="TF-Serving's REST port")
@click.option("--max-batch-size", default=32, show_default=True)
@click.option(
    "--batch-timeout-micros",
    default=0,
    show_default=True,
    help="how long a batch waits for company (0: never; requests arriving during an inference form the next batch)",
)
@click.option("--max-enqueued-batches", default=16, show_default=True)
@click.option("--enable-batching/--disable-batching", default=True, show_default=True)
@click.option("--bucket", default=16, show_default=True, help="rows are padded to a multiple of this length")
@click.option(
    "--split-by-bucket/--pad-to-longest",
    default=True,
    show_default=True,
    help="a merged batch runs one inference per length bucket, or all rows padded to the longest",
)
@click.option("--threads", default=0, show_default=True, help="inference threads (0 = OpenVINO's choice)")
@click.option("--poll-seconds", default=1.0, show_default=True, help="how often to look for new versions (0 = never)")
def main(
    backend,
    tfserving_url,
    model_dir,
    model_name,
    host,
    port,
    max_batch_size,
    batch_timeout_micros,
    max_enqueued_batches,
    enable_batching,
    bucket,
    split_by_bucket,
    threads,
    poll_seconds,
) -> None:
    import uvicorn

    from vbert.serving.app import create_app
    from vbert.serving.versions import ModelVersions

    setup_logging()
    batching = BatchingParameters(
        max_batch_size,
        batch_timeout_micros,
        max_enqueued_batches,
        bucket=bucket,
        enabled=enable_batching,
        split_by_bucket=split_by_bucket,
    )
    versions = ModelVersions(backend, model_dir, batching, threads, poll_seconds, tfserving_url=tfserving_url)
    model = versions.load_latest_now()
    log.info(
        "serving %s version %d (%s, %s) on http://%s:%d",
        model_dir,
        model.version,
        backend,
        model.backend.precision,
        host,
        port,
    )
    uvicorn.run(create_app(versions, model, model_name or model_dir.name), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
