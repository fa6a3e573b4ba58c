"""Serving overhead of the edge node: in-process vs gRPC unary vs gRPC streaming.

Usage::

    python bench/edge_serving.py --bundle DIR [--images DIR] [--seconds N] [--cores 2]

Without ``--bundle`` a tiny test bundle is built in a temp directory. Without
``--images`` synthetic JPEGs are used. The gRPC client runs in a separate
process. Runs every serving measurement twice, with batching off
(``batch_max=1``) and on (``--batch-max``), two nodes up at once and
``--rounds`` alternating rounds (best of each kept, as a busy machine only
slows a run down), and prints them side by side:
in-process img/s, unary and streaming img/s with p50/p99 latency, their ratios
to in-process (the serving overhead), then video-file end-to-end fps and node
RSS after 1k and 10k camera frames with batching on.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from edge.camera import CameraReader, VideoCaptureSource  # noqa: E402
from edge.inspector import Inspector  # noqa: E402
from edge.node import CameraLoop, EdgeNode  # noqa: E402
from edge.runtime.bundle import ModelBundle, load_bundle  # noqa: E402
from edge.settings import EdgeSettings  # noqa: E402


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _images(folder: Path | None, count: int, side: int) -> list[bytes]:
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
        return [p.read_bytes() for p in files]
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(count):
        image = rng.integers(112, 144, (side, side, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        encoded.append(data.tobytes())
    return encoded


def _settings(work: Path, args: argparse.Namespace, batch_max: int) -> EdgeSettings:
    return EdgeSettings(
        batch_max=batch_max,
        batch_wait_ms=args.batch_wait_ms,
        grpc="127.0.0.1:0",
        insecure=True,  # the plaintext figures; bench/grpc_tls.py sets them beside mTLS
        record_dir=work / "record",
        intra_op_threads=args.intra_op_threads,
        inference_workers=args.workers,
        stream_window=args.stream_window,
        grpc_workers=8,
        warmup_runs=5,
    )


def _in_process(inspector: Inspector, images: list[bytes], seconds: float, threads: int) -> float:
    done = [0] * threads
    stop = threading.Event()

    def work(slot: int) -> None:
        i = slot
        while not stop.is_set():
            inspector.inspect_encoded(images[i % len(images)])
            done[slot] += 1
            i += threads

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    stop.wait(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def _engine_only(node: EdgeNode, seconds: float) -> float:
    engine = node.slot.current().engine
    batch = np.full((1, engine.input_height, engine.input_width, 3), 128, np.uint8)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        engine.run(batch)
        done += 1
    return done / (time.perf_counter() - started)


CLIENT_CPU_MS: dict[str, list[float]] = {}  # per gRPC mode, one value per run


def _client(
    mode: str,
    port: int,
    images: list[bytes],
    seconds: float,
    window: int,
    out: mp.Queue,  # type: ignore[type-arg]
    tls: tuple[str, str, str] | None = None,
) -> None:
    """Runs in a separate process: unary calls (``window`` in flight) or one stream.

    ``tls`` is (certificate, key, CA) paths for mutual TLS; None dials plaintext.
    """
    import grpc
    from linewatch.v1 import inspection_pb2, inspection_pb2_grpc

    requests = [inspection_pb2.InspectRequest(encoded=data) for data in images]
    if tls is None:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    else:
        from edge.runtime.tls import TlsFiles, channel_credentials

        files = TlsFiles(*(Path(item) for item in tls))
        channel = grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials(files))
    stub = inspection_pb2_grpc.InspectionServiceStub(channel)
    for request in requests[:4]:  # connect and warm up
        stub.Inspect(request, timeout=30)
    latencies: list[float] = []
    started = time.perf_counter()
    cpu_started = time.process_time()  # this client's own CPU, taken from the node's cores
    deadline = started + seconds
    if mode == "unary":
        lock = threading.Lock()

        def caller(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                stub.Inspect(requests[i % len(requests)], timeout=30)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                i += window

        callers = [threading.Thread(target=caller, args=(k,)) for k in range(window)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
    else:
        sent: list[float] = []
        room = threading.Semaphore(window)  # a real client bounds what it has in flight

        def feed() -> Iterator[inspection_pb2.InspectRequest]:
            i = 0
            while time.perf_counter() < deadline:
                room.acquire()
                sent.append(time.perf_counter())
                yield requests[i % len(requests)]
                i += 1

        for i, _ in enumerate(stub.InspectStream(feed(), timeout=seconds + 60)):
            latencies.append(time.perf_counter() - sent[i])
            room.release()
    elapsed = time.perf_counter() - started
    cpu_ms_per_call = (time.process_time() - cpu_started) * 1000.0 / max(1, len(latencies))
    channel.close()
    out.put((len(latencies) / elapsed, latencies, cpu_ms_per_call))


def _grpc(
    mode: str,
    port: int,
    images: list[bytes],
    seconds: float,
    window: int,
    tls: tuple[str, str, str] | None = None,
) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=_client, args=(mode, port, images, seconds, window, out, tls))
    process.start()
    rate, latencies, client_cpu_ms = out.get(timeout=seconds + 120)
    process.join()
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000.0
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000.0
    CLIENT_CPU_MS.setdefault(mode, []).append(client_cpu_ms)
    return rate, p50, p99


def _write_video(path: Path, frames: int, side: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (side, side))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(112, 144, (side, side, 3), dtype=np.uint8))
    writer.release()
    return path


def _video_fps(node: EdgeNode, video: Path, frames: int) -> float:
    reader = CameraReader(VideoCaptureSource(str(video), live=False), queue_size=4)
    loop = CameraLoop(reader, node.inspector, node.dispatcher, node.metrics)
    started = time.perf_counter()
    loop.start()
    loop.finished.wait(600)
    elapsed = time.perf_counter() - started
    loop.stop()
    assert loop.processed == frames, (loop.processed, frames)
    return frames / elapsed


def _memory_run(
    bundle_dir: str, video: str, checkpoints: list[int], settings_json: str, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    """In a fresh process: a node inspecting a looping video; RSS at each checkpoint."""
    settings = EdgeSettings.model_validate_json(settings_json)
    node = EdgeNode(settings.model_copy(update={"camera": video, "loop": True}))
    node.load(Path(bundle_dir))
    node.start()
    assert node.camera is not None
    samples = []
    for target in checkpoints:
        while node.camera.processed < target:
            node.camera.finished.wait(0.05)  # poll interval while frames flow
        samples.append((node.camera.processed, _rss_mb()))
    node.stop(grace_s=1.0)
    out.put(samples)


def _memory(bundle: ModelBundle, settings: EdgeSettings, video: Path) -> list[tuple[int, float]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    args = (str(bundle.directory), str(video), [1_000, 10_000], settings.model_dump_json(), out)
    process = ctx.Process(target=_memory_run, args=args)
    process.start()
    samples: list[tuple[int, float]] = out.get(timeout=900)
    process.join()
    return samples


@dataclass(frozen=True)
class Serving:
    """One configuration's figures: img/s, and (img/s, p50 ms, p99 ms) over gRPC."""

    engine: float
    in_process: float
    unary: tuple[float, float, float]
    stream: tuple[float, float, float]


def _best(first: Serving | None, second: Serving) -> Serving:
    """The better figure of two rounds, metric by metric: load from others only slows us."""
    if first is None:
        return second
    return Serving(
        engine=max(first.engine, second.engine),
        in_process=max(first.in_process, second.in_process),
        unary=max(first.unary, second.unary),
        stream=max(first.stream, second.stream),
    )


def _serving(node: EdgeNode, port: int, images: list[bytes], args: argparse.Namespace) -> Serving:
    engine_rate = _engine_only(node, args.seconds)
    # (a) is the best in-process figure, 1 or N threads, before and after the gRPC runs:
    # a conservative denominator on a machine whose load drifts.
    in_proc_before = max(
        _in_process(node.inspector, images, args.seconds, threads)
        for threads in sorted({1, args.workers})
    )
    unary = _grpc("unary", port, images, args.seconds, args.unary_concurrency)
    stream = _grpc("stream", port, images, args.seconds, 2 * args.stream_window)
    in_proc_after = _in_process(node.inspector, images, args.seconds, args.workers)
    return Serving(engine_rate, max(in_proc_before, in_proc_after), unary, stream)


def _print_side_by_side(runs: dict[str, Serving], args: argparse.Namespace) -> None:
    names = list(runs)
    print(f"{'path':<34}" + "".join(f" | {name:^25}" for name in names))
    print(f"{'':<34}" + " | img/s    p50 ms   p99 ms " * len(names))

    def row(label: str, cells: list[tuple[float, float | None, float | None]]) -> None:
        text = "".join(
            f" | {rate:7.1f}  {'' if p50 is None else f'{p50:7.2f}':>7}  "
            f"{'' if p99 is None else f'{p99:7.2f}':>7}"
            for rate, p50, p99 in cells
        )
        print(f"{label:<34}{text}")

    row("engine only (ORT run, batch 1)", [(runs[n].engine, None, None) for n in names])
    row("(a) in-process inspect (best)", [(runs[n].in_process, None, None) for n in names])
    row(f"(b) gRPC unary, {args.unary_concurrency} in flight", [runs[n].unary for n in names])
    row(f"(b) gRPC stream, window {args.stream_window}", [runs[n].stream for n in names])
    for label, key in (("unary/in-process", "unary"), ("streaming/in-process", "stream")):
        ratios = "".join(
            f" | {getattr(runs[n], key)[0] / runs[n].in_process:^25.3f}" for n in names
        )
        print(f"ratio {label:<28}{ratios}")
    print("targets: streaming/in-process >= 0.90, unary/in-process >= 0.80")
    # The client shares the node's cores here; a camera PC on the network would not.
    for mode, values in CLIENT_CPU_MS.items():
        print(
            f"client CPU per image, {mode:<6} {statistics.median(values):6.2f} ms "
            "(median over runs; spent on the node's own cores in this bench)"
        )


def main() -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--image-side", type=int, default=256, help="synthetic image size")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="node inference workers")
    parser.add_argument("--stream-window", type=int, default=4)
    parser.add_argument("--unary-concurrency", type=int, default=2)
    parser.add_argument("--batch-max", type=int, default=EdgeSettings().batch_max)
    parser.add_argument("--batch-wait-ms", type=float, default=EdgeSettings().batch_wait_ms)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds, best kept")
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[: args.cores]))  # children inherit it
    work = Path(tempfile.mkdtemp(prefix="linewatch-bench-"))
    if args.bundle is None:
        from tests.tiny_bundle import make_tiny_bundle

        bundle = make_tiny_bundle(work / "tiny-bundle")
    else:
        bundle = load_bundle(args.bundle)
    images = _images(args.images, 16, args.image_side)
    configurations = {
        "batching off (max 1)": 1,
        f"batching on (max {args.batch_max})": args.batch_max,
    }
    nodes: dict[str, tuple[EdgeNode, int]] = {}
    for name, batch_max in configurations.items():
        settings = _settings(work / f"batch-{batch_max}", args, batch_max)
        started = EdgeNode(settings)
        started.load(bundle)
        nodes[name] = (started, started.start())
    # Both nodes stay up and the rounds alternate their order, so a neighbour's load
    # spike hits both; each figure is the best of the rounds.
    best: dict[str, Serving | None] = dict.fromkeys(configurations)
    for round_index in range(args.rounds):
        order = list(configurations) if round_index % 2 == 0 else list(reversed(configurations))
        for name in order:
            best[name] = _best(best[name], _serving(*nodes[name], images, args))
    runs = {name: figures for name, figures in best.items() if figures is not None}
    for name in list(nodes)[:-1]:
        nodes[name][0].stop(grace_s=2.0)
    node = nodes[list(nodes)[-1]][0]
    engine = node.slot.current().engine
    print(
        f"bundle {bundle.label}  input {engine.input_height}x{engine.input_width}  "
        f"providers {','.join(engine.providers)}  cores {args.cores}  images {len(images)} "
        f"(mean {statistics.mean(len(b) for b in images) / 1024:.1f} KiB)  "
        f"batch_wait_ms {args.batch_wait_ms}"
    )
    _print_side_by_side(runs, args)
    video = _write_video(work / "video.avi", args.video_frames, args.image_side)
    fps = _video_fps(node, video, args.video_frames)
    node.stop(grace_s=2.0)
    print(f"video file end to end       {fps:.1f} fps ({args.video_frames} frames "
          f"{args.image_side}x{args.image_side} MJPG, batching on)")  # fmt: skip
    if not args.skip_memory:
        small = _write_video(work / "small.avi", 200, 64)
        samples = _memory(bundle, settings, small)
        for frames, rss in samples:
            print(f"node RSS after {frames:>6} frames  {rss:8.1f} MiB")
        print(f"RSS growth 1k -> 10k         {samples[-1][1] - samples[0][1]:+.1f} MiB")


if __name__ == "__main__":
    main()
