"""Start the server: `python -m vbert.serving --backend openvino --model-dir models/ir/vbert`.

REST on `--port` (TF-Serving's 8501), gRPC on `--grpc-port` (8500; 0: off). One model from `--model-dir`
(`<base>/<name>`, version folders inside), or several from `--model-config-file` (TF-Serving's `models.config`).
SIGTERM: stop accepting, finish what is in flight (up to `--shutdown-grace-seconds`), then exit.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
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
@click.option(
    "--max-batch-tokens",
    default=1024,
    show_default=True,
    help="rows x padded length per inference at most (0: --max-batch-size alone): short requests wait less "
    "beside max-size ones",
)
@click.option("--max-request-rows", default=256, show_default=True, help="rows (texts) per request; more: 413")
@click.option(
    "--request-timeout-ms",
    default=5000,
    show_default=True,
    help="a request not done by then: 504, the rest not computed",
)
@click.option("--enable-batching/--disable-batching", default=True, show_default=True)
@click.option(
    "--bucket",
    default=16,
    show_default=True,
    help="rows computed together are padded to a multiple of this length (a lone row is not)",
)
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
    help="before serving: one inference of each of these row counts at each width bucket (1 row: every width), '' none",
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
        serve(ServerOptions(**options))
    except (ValueError, FileNotFoundError, InputError) as error:  # a bad flag or model folder: one line, exit 1
        raise click.ClickException(str(error)) from error


@dataclass(frozen=True)
class ServerOptions:
    """Every command-line option of the server, checked together; the parts each layer takes are properties."""

    backend: str
    tfserving_url: str
    model_dir: Path | None
    model_name: str | None
    model_config_file: Path | None
    host: str
    port: int
    grpc_port: int
    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    max_batch_tokens: int
    max_request_rows: int
    request_timeout_ms: int
    enable_batching: bool
    bucket: int
    split_by_bucket: bool
    warm_up_rows: str
    threads: int
    poll_seconds: float
    max_body_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    keep_alive_seconds: int
    shutdown_grace_seconds: int

    def __post_init__(self) -> None:
        if (self.model_dir is None) == (self.model_config_file is None):
            raise ValueError("give exactly one of --model-dir or --model-config-file")
        if self.backend == "tfserving" and not self.tfserving_url:
            raise ValueError("--backend tfserving needs --tfserving-url")
        if self.max_request_rows > self.batching.queue_rows:
            raise ValueError(
                f"--max-request-rows {self.max_request_rows} exceeds what the queue holds ({self.batching.queue_rows}"
                " rows = --max-enqueued-batches x --max-batch-size): such requests could never be accepted"
            )

    @property
    def batching(self):
        from vbert.serving.batching import BatchingParameters

        return BatchingParameters(
            self.max_batch_size,
            self.batch_timeout_micros,
            self.max_enqueued_batches,
            self.bucket,
            self.enable_batching,
            self.split_by_bucket,
            self.max_batch_tokens,
        )

    @property
    def limits(self):
        from vbert.serving.model_server import Limits

        return Limits(self.max_request_rows, self.request_timeout_ms / 1000)

    @property
    def http_limits(self):
        from vbert.serving.rest import HttpLimits

        return HttpLimits(self.max_body_bytes, self.body_timeout_seconds)

    @property
    def sources(self):
        from vbert.serving.model_server import ModelSource, read_model_config

        if self.model_dir is not None:
            return [ModelSource(self.model_name or self.model_dir.name, self.model_dir)]
        return read_model_config(self.model_config_file)


def serve(options: ServerOptions) -> None:
    import uvicorn

    from vbert.serving.backends import load_version
    from vbert.serving.metrics import Metrics
    from vbert.serving.model_server import ModelServer, ServedModel
    from vbert.serving.rest import create_app

    metrics = Metrics()
    rows = tuple(int(n) for n in options.warm_up_rows.split(",") if n.strip())
    load = partial(
        load_version,
        options.backend,
        threads=options.threads,
        tfserving_url=options.tfserving_url,
        warm_up_rows=rows,
        bucket=options.bucket,
    )
    models = {s.name: ServedModel(s, load, options.batching, metrics.on_batch(s.name)) for s in options.sources}
    for model in models.values():
        model.load_now()
        log.info(
            "serving %s version %d from %s (%s, %s)",
            model.source.name,
            model.current.model.version,
            model.source.base_path,
            options.backend,
            model.current.model.backend.precision,
        )
    server = ModelServer(models, options.limits, options.poll_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        from vbert.serving.grpc_api import start_grpc

        await server.start()
        grpc_server = None
        if options.grpc_port:
            grpc_server = await start_grpc(server, metrics, options.host, options.grpc_port, options.max_body_bytes)
            log.info("gRPC on %s:%d", options.host, grpc_server.port)
        log.info("REST on http://%s:%d", options.host, options.port)
        yield
        if grpc_server is not None:
            await grpc_server.stop(options.shutdown_grace_seconds)
        await server.stop()
        log.info("stopped: in-flight work finished")

    app = create_app(server, options.http_limits, metrics, lifespan)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        http=timed_protocol(options.header_timeout_seconds),
        loop="uvloop",
        timeout_keep_alive=options.keep_alive_seconds,
        timeout_graceful_shutdown=options.shutdown_grace_seconds,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
