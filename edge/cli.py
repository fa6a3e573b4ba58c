"""``linewatch-edge``: run an inference node (``serve``) or measure a bundle (``bench``).

One handler turns a ``LinewatchError`` into ``error: …`` on stderr and exit
status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import numpy as np
import typer

from edge.authz import tls_files
from edge.camera import IMAGE_SUFFIXES
from edge.node import EdgeNode, engine_options
from edge.runtime.bundle import load_bundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.errors import ConfigError, LinewatchError
from edge.runtime.imaging import ImageArray, read_image, resize_for_model
from edge.settings import load_settings

__all__ = ["app", "main"]

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="linewatch-edge",
    help="Linewatch inference node: cameras in, verdicts out over gRPC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_CONFIG_HELP = "TOML file with settings (flags > LINEWATCH_* environment > file)."


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress at INFO.")] = False,
) -> None:
    """Linewatch inference node."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(  # one flag per setting a user may want on the command line
    bundle: Annotated[Path | None, typer.Option(help="Model bundle directory or .tar.")] = None,
    camera: Annotated[
        str | None,
        typer.Option(help="Video file, image folder, RTSP/HTTP URL or USB index; none: gRPC only."),
    ] = None,
    grpc_address: Annotated[
        str | None, typer.Option("--grpc", help="host:port to listen on.")
    ] = None,
    site: Annotated[str | None, typer.Option(help="Site name (MQTT topics, logs).")] = None,
    line: Annotated[str | None, typer.Option(help="Line name.")] = None,
    node: Annotated[str | None, typer.Option(help="Node name.")] = None,
    config: Annotated[Path | None, typer.Option(help=_CONFIG_HELP)] = None,
    metrics: Annotated[
        str | None, typer.Option(help="[host]:port for Prometheus /metrics.")
    ] = None,
    loop: Annotated[
        bool | None, typer.Option("--loop/--no-loop", help="Replay a file source.")
    ] = None,
    record_dir: Annotated[Path | None, typer.Option(help="Where the local record is kept.")] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Where pushed bundles live; enables ModelService; survives restarts."),
    ] = None,
    trusted_key: Annotated[
        Path | None, typer.Option(help="The cloud's public key (keys/signing.pub).")
    ] = None,
    keep_bundles: Annotated[
        int | None, typer.Option(min=2, help="Bundles kept in --model-dir for rollback.")
    ] = None,
    allow_unsigned: Annotated[
        bool | None,
        typer.Option(
            "--allow-unsigned", help="Accept pushes without a signed release (development only)."
        ),
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option(help="Broker for alerts and samples: mqtt[s]://host:port.")
    ] = None,
    mqtt_user: Annotated[str | None, typer.Option(help="MQTT user name.")] = None,
    mqtt_password: Annotated[
        str | None, typer.Option(help="MQTT password (prefer LINEWATCH_MQTT_PASSWORD).")
    ] = None,
    mqtt_tls_ca: Annotated[Path | None, typer.Option(help="CA certificate; turns TLS on.")] = None,
    outbox: Annotated[
        Path | None, typer.Option(help="Durable outbox folder for MQTT messages.")
    ] = None,
    advertise: Annotated[
        str | None, typer.Option(help="host:port the cloud reaches this node at.")
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="This node's certificate (`linewatch certs issue --node NAME`)."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="This node's private key.")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="The plant CA certificate (ca.pem).")] = None,
    tls_crl: Annotated[
        Path | None, typer.Option(help="The CA's revocation list (crl.pem); re-read on change.")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plaintext gRPC, no client certificates (a lab).")
    ] = False,
    batch_max: Annotated[
        int | None, typer.Option(min=1, help="Frames per ONNX Runtime run at most (1: off).")
    ] = None,
    batch_wait_ms: Annotated[
        float | None, typer.Option(min=0.0, help="Wait for frames still decoding, at most.")
    ] = None,
) -> None:
    """Serve verdicts over gRPC and inspect a camera until SIGTERM or Ctrl-C."""
    settings = load_settings(
        config,
        bundle=bundle,
        camera=camera,
        grpc=grpc_address,
        site=site,
        line=line,
        node=node,
        metrics=metrics,
        loop=loop,
        record_dir=record_dir,
        model_dir=model_dir,
        trusted_key=trusted_key,
        keep_bundles=keep_bundles,
        allow_unsigned=allow_unsigned,
        batch_max=batch_max,
        batch_wait_ms=batch_wait_ms,
        mqtt_url=mqtt,
        mqtt_user=mqtt_user,
        mqtt_password=mqtt_password,
        mqtt_tls_ca=mqtt_tls_ca,
        outbox_dir=outbox,
        advertise_address=advertise,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
        tls_crl=tls_crl,
        insecure=insecure or None,  # not given: the environment or the file decides
    )
    tls_files(settings)  # no certificates and no --insecure: stop before opening anything
    stop = _stop_on_signals()
    edge_node = EdgeNode(settings)
    port = edge_node.start()
    host = settings.grpc.rpartition(":")[0]
    typer.echo(f"serving grpc on {host}:{port}")
    if edge_node.metrics_server is not None:
        typer.echo(f"metrics on :{edge_node.metrics_server.port}/metrics")
    try:
        if settings.bundle is not None:
            active = edge_node.load(settings.bundle)
            typer.echo(f"model {active.bundle.label} on {','.join(active.engine.providers)}")
        elif (restored := edge_node.restore()) is not None:
            typer.echo(f"model {restored.bundle.label} restored from {settings.model_dir}")
        elif settings.model_dir is not None:
            typer.echo(f"no model yet: waiting for a push into {settings.model_dir}")
        else:
            logger.warning("no bundle given: Inspect answers FAILED_PRECONDITION until one is")
        while not stop.wait(0.5):
            pass
    finally:
        edge_node.stop()
    typer.echo("stopped")


def _stop_on_signals() -> threading.Event:
    """Return an event that SIGTERM or SIGINT sets (installed before anything slow starts)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal received, stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    return stop


def _bench_images(images: Path | None, height: int, width: int) -> list[tuple[str, ImageArray]]:
    if images is None:
        rng = np.random.default_rng(0)
        return [
            (f"synthetic-{i}", rng.integers(96, 160, (height, width, 3), dtype=np.uint8))
            for i in range(8)
        ]
    if not images.is_dir():
        msg = f"bench: --images {images} is not a folder"
        raise ConfigError(msg)
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        msg = f"bench: --images {images} holds no images"
        raise ConfigError(msg)
    return [(path.name, read_image(path)) for path in files]


@app.command()
def bench(
    bundle: Annotated[Path, typer.Option(help="Model bundle directory or .tar.")],
    images: Annotated[
        Path | None, typer.Option(help="Folder of images; default: synthetic.")
    ] = None,
    repeats: Annotated[
        int, typer.Option(min=1, help="Runs per image for the batch-1 median.")
    ] = 20,
    seconds: Annotated[float, typer.Option(min=0.1, help="How long to run batch 8.")] = 3.0,
    config: Annotated[Path | None, typer.Option(help=_CONFIG_HELP)] = None,
) -> None:
    """Latency per image (batch 1) and throughput (batch 8) with the providers in use."""
    settings = load_settings(config, bundle=bundle)
    engine = InferenceEngine(load_bundle(bundle), engine_options(settings))
    engine.warm_up()
    policy = engine.bundle.manifest.decision
    typer.echo(f"model {engine.bundle.label} providers {','.join(engine.providers)}")
    samples = _bench_images(images, engine.input_height, engine.input_width)
    typer.echo(f"{'image':<32} {'latency_ms':>10} {'score':>8}  verdict")
    for name, image in samples:
        batch = resize_for_model(image, engine.input_height, engine.input_width)[np.newaxis]
        runs = [engine.run(batch) for _ in range(repeats)]
        median_ms = statistics.median(run.latency_ms for run in runs)
        score = float(runs[0].image_scores[0])
        typer.echo(f"{name[:32]:<32} {median_ms:>10.2f} {score:>8.3f}  {policy.decide(score)}")
    resized = [resize_for_model(img, engine.input_height, engine.input_width) for _, img in samples]
    batch8 = np.stack([resized[i % len(resized)] for i in range(8)])
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        engine.run(batch8)
        done += 8
    rate = done / (time.perf_counter() - started)
    typer.echo(f"throughput batch 8: {rate:.1f} images/s")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``linewatch-edge`` console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv)
    try:
        app(args=argv, standalone_mode=True)
    except LinewatchError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
