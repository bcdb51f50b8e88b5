"""Start the server: `python -m vbert.serving --backend openvino --model-dir models/ir/vbert`.

REST on `--port` (TF-Serving's 8501), gRPC on `--grpc-port` (8500; 0: off). One model from `--model-dir`
(`<base>/<name>`, version folders inside), or several from `--model-config-file` (TF-Serving's `models.config`).
SIGTERM: stop accepting, finish what is in flight (up to `--shutdown-grace-seconds`), then exit.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from pathlib import Path

import click

from vbert.core.cli import setup_logging
from vbert.core.errors import InputError
from vbert.serving.backends import BACKENDS

log = logging.getLogger("vbert.serving")


def timed_protocol(header_timeout: float):
    """uvicorn's HTTP protocol, closing a connection that has not sent a request's headers within `header_timeout`
    seconds (slow or idle new connections; uvicorn times out idle keep-alive ones itself)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedProtocol(HttpToolsProtocol):
        _timer = None

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(header_timeout, self.transport.close)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedProtocol


@click.command()
@click.option("--backend", type=click.Choice(BACKENDS), default="openvino", show_default=True)
@click.option(
    "--tfserving-url", default="", help="backend tfserving: the TF-Serving to forward to, e.g. http://tfserving:8501"
)
@click.option(
    "--model-dir", type=click.Path(path_type=Path, exists=True), help="<base>/<model_name>: version folders inside"
)
@click.option("--model-name", default=None, help="with --model-dir: the name served (default: the folder's name)")
@click.option(
    "--model-config-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="several models: TF-Serving's models.config (model_config_list { config { name base_path } })",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, help="REST (TF-Serving's 8501)")
@click.option("--grpc-port", default=8500, show_default=True, help="gRPC (TF-Serving's 8500); 0: no gRPC")
@click.option("--max-batch-size", default=32, show_default=True, help="rows per inference")
@click.option(
    "--batch-timeout-micros", default=0, show_default=True, help="how long a batch waits for company (0: never)"
)
@click.option("--max-enqueued-batches", default=64, show_default=True, help="the queue holds this many batches' rows")
@click.option("--max-request-rows", default=256, show_default=True, help="rows (texts) per request; more: 413")
@click.option(
    "--request-timeout-ms",
    default=5000,
    show_default=True,
    help="a request not done by then: 504, the rest not computed",
)
@click.option("--enable-batching/--disable-batching", default=True, show_default=True)
@click.option("--bucket", default=16, show_default=True, help="rows are padded to a multiple of this length")
@click.option(
    "--split-by-bucket/--pad-to-longest",
    default=True,
    show_default=True,
    help="a batch runs one inference per length bucket, or all rows padded to the longest",
)
@click.option(
    "--warm-up-rows",
    default="1,2,4,8,16,32",
    show_default=True,
    help="before serving, one inference of each of these row counts at every width bucket ('' for none)",
)
@click.option("--threads", default=0, show_default=True, help="inference threads (0 = OpenVINO's choice)")
@click.option(
    "--poll-seconds", default=1.0, show_default=True, help="how often to look for version changes (0 = never)"
)
@click.option("--max-body-bytes", default=4 << 20, show_default=True, help="request body limit (after gzip decoding)")
@click.option("--header-timeout-seconds", default=10.0, show_default=True, help="to send a request's headers")
@click.option("--body-timeout-seconds", default=30.0, show_default=True, help="to send a request's body")
@click.option("--keep-alive-seconds", default=5, show_default=True, help="an idle kept-alive connection is closed")
@click.option("--shutdown-grace-seconds", default=20, show_default=True, help="SIGTERM: time to finish in-flight work")
def main(**options) -> None:
    setup_logging()
    try:
        serve(**options)
    except (ValueError, FileNotFoundError, InputError) as error:  # a bad flag or model folder: one line, exit 1
        raise click.ClickException(str(error)) from error


def serve(
    backend: str,
    tfserving_url: str,
    model_dir: Path | None,
    model_name: str | None,
    model_config_file: Path | None,
    host: str,
    port: int,
    grpc_port: int,
    max_batch_size: int,
    batch_timeout_micros: int,
    max_enqueued_batches: int,
    max_request_rows: int,
    request_timeout_ms: int,
    enable_batching: bool,
    bucket: int,
    split_by_bucket: bool,
    warm_up_rows: str,
    threads: int,
    poll_seconds: float,
    max_body_bytes: int,
    header_timeout_seconds: float,
    body_timeout_seconds: float,
    keep_alive_seconds: int,
    shutdown_grace_seconds: int,
) -> None:
    import uvicorn

    from vbert.serving.backends import load_version
    from vbert.serving.batching import BatchingParameters
    from vbert.serving.metrics import Metrics
    from vbert.serving.models import Limits, ModelServer, ModelSource, ServedModel, read_model_config
    from vbert.serving.rest import HttpLimits, create_app

    if (model_dir is None) == (model_config_file is None):
        raise ValueError("give exactly one of --model-dir or --model-config-file")
    if backend == "tfserving" and not tfserving_url:
        raise ValueError("--backend tfserving needs --tfserving-url")
    batching = BatchingParameters(
        max_batch_size, batch_timeout_micros, max_enqueued_batches, bucket, enable_batching, split_by_bucket
    )
    if max_request_rows > batching.queue_rows:
        raise ValueError(
            f"--max-request-rows {max_request_rows} exceeds what the queue holds ({batching.queue_rows} rows = "
            "--max-enqueued-batches x --max-batch-size): such requests could never be accepted"
        )
    sources = (
        [ModelSource(model_name or model_dir.name, model_dir)] if model_dir else read_model_config(model_config_file)
    )
    metrics = Metrics()
    rows = tuple(int(n) for n in warm_up_rows.split(",") if n.strip())
    load = partial(
        load_version, backend, threads=threads, tfserving_url=tfserving_url, warm_up_rows=rows, bucket=bucket
    )
    models = {s.name: ServedModel(s, load, batching, metrics.on_batch(s.name)) for s in sources}
    for model in models.values():
        model.load_now()
        log.info(
            "serving %s version %d from %s (%s, %s)",
            model.source.name,
            model.current.model.version,
            model.source.base_path,
            backend,
            model.current.model.backend.precision,
        )
    server = ModelServer(models, Limits(max_request_rows, request_timeout_ms / 1000), poll_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        from vbert.serving.grpc_api import start_grpc

        await server.start()
        grpc_server = None
        if grpc_port:
            grpc_server = await start_grpc(server, metrics, host, grpc_port, max_body_bytes)
            log.info("gRPC on %s:%d", host, grpc_server.port)
        log.info("REST on http://%s:%d", host, port)
        yield
        if grpc_server is not None:
            await grpc_server.stop(shutdown_grace_seconds)
        await server.stop()
        log.info("stopped: in-flight work finished")

    app = create_app(server, HttpLimits(max_body_bytes, body_timeout_seconds), metrics, lifespan)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_protocol(header_timeout_seconds),
        loop="uvloop",
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=shutdown_grace_seconds,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
