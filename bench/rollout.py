"""Rollout to node processes on loopback, and what a swap costs a 50 frames/s stream.

Usage::

    python bench/rollout.py [--nodes 1,4,16] [--fps 50] [--swaps 5] [--bundle DIR] [--tls]

Starts ``max(--nodes)`` real ``linewatch-edge serve`` processes (no camera, a
model dir each, the bench's public key trusted), then:

1. rolls a new signed version out to the first 1, 4, 16 nodes (``--concurrency``
   at a time) and reports wall time, bytes sent per node and failures;
2. streams frames at ``--fps`` to node 0 with ``InspectStream`` and, after a
   quiet baseline, pushes and activates ``--swaps`` new versions one after the
   other; reports failed frames and latency p50/p99/max before vs during swaps
   (a frame is "during" when it was sent between a push start and one second
   after its activation returned), frames delayed past twice the baseline p99,
   the p99 ratio against the goal (<= 1.5x, no frame over 2x), and the first
   ``--first-frames`` frames answered by each new version against steady state.

Without ``--bundle`` a tiny bundle with golden images is built (64 px), so 16
processes fit on a small machine; pass a trained bundle to measure a real one.
Nodes serve plaintext (``--insecure``) unless ``--tls``: then a plant CA is made,
each node gets its certificate and the deployer and the camera dial with theirs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import cv2
import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from linewatch.v1 import inspection_pb2, inspection_pb2_grpc  # noqa: E402

from cloud.deploy import PackedBundle, Target, pack_bundle, roll_out  # noqa: E402
from cloud.deploy.pusher import ClientOptions, NodeClient  # noqa: E402
from cloud.pki import init_ca, issue_certificate, load_ca  # noqa: E402
from cloud.release import ReleaseScope, sign_release  # noqa: E402
from cloud.signing import generate_key_pair, load_private_key, sign_manifest  # noqa: E402
from edge.runtime.bundle import load_bundle, write_manifest  # noqa: E402
from edge.runtime.tls import CRL_FILE, Role, TlsFiles, channel_credentials  # noqa: E402

EDGE = Path(sys.executable).parent / "linewatch-edge"


@dataclass
class NodeProc:
    process: subprocess.Popen[str]
    address: str = ""
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plant:
    """A plant CA for the bench: node certificates by index, the deployer's and a camera's."""

    directory: Path
    deployer: TlsFiles
    camera: TlsFiles

    def node_flags(self, index: int) -> list[str]:
        stem = self.directory / f"node-bench-{index}"
        return [
            "--tls-cert", f"{stem}.pem", "--tls-key", f"{stem}.key",
            "--tls-ca", str(self.deployer.ca), "--tls-crl", str(self.directory / CRL_FILE),
        ]  # fmt: skip


def make_plant(directory: Path, nodes: int) -> Plant:
    """A CA with ``nodes`` node certificates (bench-0 …), a deployer and a client."""
    init_ca(directory)
    ca = load_ca(directory)
    for index in range(nodes):
        issue_certificate(ca, f"bench-{index}", Role.NODE)
    files = []
    for name, role in (("deployer", Role.DEPLOYER), ("camera", Role.CLIENT)):
        issued = issue_certificate(ca, name, role)
        files.append(TlsFiles(issued.certificate, issued.private_key, ca.certificate_path))
    return Plant(directory, files[0], files[1])


def _start_nodes(
    count: int, work: Path, public_key: Path, plant: Plant | None = None
) -> list[NodeProc]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env |= {"LINEWATCH_INTRA_OP_THREADS": "1", "LINEWATCH_WARMUP_RUNS": "1"}
    nodes = []
    for index in range(count):
        security = ["--insecure"] if plant is None else plant.node_flags(index)
        command = [
            str(EDGE), "serve", "--grpc", "127.0.0.1:0", "--node", f"bench-{index}",
            "--model-dir", str(work / f"node-{index}" / "models"),
            "--record-dir", str(work / f"node-{index}" / "record"),
            "--trusted-key", str(public_key), *security,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        nodes.append(NodeProc(process))
    for node in nodes:
        threading.Thread(target=_drain, args=(node,), daemon=True).start()
    deadline = time.monotonic() + 60 + 5 * count
    while any(not node.address for node in nodes):
        if time.monotonic() > deadline or any(n.process.poll() is not None for n in nodes):
            msg = f"nodes did not start: {[n.lines[-3:] for n in nodes]}"
            raise SystemExit(msg)
        time.sleep(0.05)  # poll the drain threads
    return nodes


def _drain(node: NodeProc) -> None:
    assert node.process.stdout is not None
    for line in node.process.stdout:
        node.lines.append(line.rstrip())
        found = re.search(r"serving grpc on (\S+:\d+)", line)
        if found:
            node.address = found.group(1)


def _versions(
    base: Path, work: Path, key_path: Path, count: int, node_names: tuple[str, ...]
) -> Iterator[PackedBundle]:
    """Copies of the base bundle stamped version 1, 2, …, signed and released to the nodes."""
    key = load_private_key(key_path)
    manifest = load_bundle(base).manifest
    for number in range(1, count + 1):
        folder = work / "versions" / str(number)
        shutil.copytree(base, folder)
        write_manifest(
            sign_manifest(manifest.model_copy(update={"version": str(number)}), key), folder
        )
        release = sign_release(folder, key, ReleaseScope(nodes=node_names))
        yield pack_bundle(folder, folder.with_suffix(".tar"), release=release)


def _tiny_bundle(work: Path) -> Path:
    from tests.plugins.deploy import make_pushable_bundle

    return make_pushable_bundle(work / "base", name="bench", key=None).directory


def _rollouts(
    nodes: list[NodeProc],
    counts: list[int],
    versions: Iterator[PackedBundle],
    concurrency: int,
    options: ClientOptions | None = None,
) -> list[float]:
    """Roll one version out to the first ``count`` nodes for each count; the seconds each took."""
    tls = "mutual TLS" if options is not None and options.tls is not None else "plaintext"
    print(f"\nrollout ({concurrency} nodes at a time, {tls})")
    print(
        f"{'nodes':>5} {'version':>8} {'seconds':>8} {'state':>10} {'bytes/node':>11} {'failed':>7}"
    )
    seconds: list[float] = []
    for count in counts:
        packed = next(versions)
        targets = [
            Target(name=f"bench-{i}", address=n.address) for i, n in enumerate(nodes[:count])
        ]
        report = roll_out(packed, targets, concurrency=concurrency, options=options)
        seconds.append(report.seconds)
        sent = statistics.mean(item.bytes_sent for item in report.outcomes)
        print(
            f"{count:>5} {packed.version:>8} {report.seconds:>8.2f} {report.state:>10} "
            f"{sent:>11.0f} {len(report.failed):>7}"
        )
        for item in report.failed:
            print(f"      {item.target.name}: {item.detail}")
    return seconds


@dataclass
class StreamStats:
    sent_at: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    version: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _stream(
    address: str, fps: float, stop: EventType, stats: StreamStats, tls: TlsFiles | None = None
) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(8):
        ok, data = cv2.imencode(".png", rng.integers(112, 144, (64, 64, 3), dtype=np.uint8))
        assert ok
        frames.append(data.tobytes())

    def requests() -> Iterator[inspection_pb2.InspectRequest]:
        period, start, index = 1.0 / fps, time.perf_counter(), 0
        while not stop.is_set():
            due = start + index * period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the camera-like stream, not waiting for a result
            frame_id = str(index)
            stats.sent_at[frame_id] = time.perf_counter()
            yield inspection_pb2.InspectRequest(encoded=frames[index % 8], frame_id=frame_id)
            index += 1

    channel = (
        grpc.insecure_channel(address)
        if tls is None
        else grpc.secure_channel(address, channel_credentials(tls))
    )
    with channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        try:
            for response in stub.InspectStream(requests(), timeout=3600):
                now = time.perf_counter()
                stats.latency_ms[response.frame_id] = (now - stats.sent_at[response.frame_id]) * 1e3
                stats.version[response.frame_id] = response.model.version
        except grpc.RpcError as exc:
            stats.errors.append(f"{exc.code().name}: {exc.details()}")


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no frames"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    median = statistics.median(ordered)
    return f"n={len(ordered):>5} p50 {median:6.2f} ms  p99 {p99:6.2f} ms  max {ordered[-1]:6.2f} ms"


def _camera_process(
    address: str, fps: float, stop: EventType, results: Connection, tls: TlsFiles | None
) -> None:
    stats = StreamStats()
    _stream(address, fps, stop, stats, tls)
    results.send((stats.sent_at, stats.latency_ms, stats.version, stats.errors))


def _first_on_each_version(stats: StreamStats, count: int) -> list[float]:
    """Latencies of the first ``count`` frames each version answered after the first one."""
    by_version: dict[str, list[tuple[float, float]]] = {}
    for frame_id, latency in stats.latency_ms.items():
        by_version.setdefault(stats.version[frame_id], []).append(
            (stats.sent_at[frame_id], latency)
        )
    first_version = min(by_version, key=lambda version: min(by_version[version]))
    return [
        latency
        for version, frames in by_version.items()
        if version != first_version
        for _, latency in sorted(frames)[:count]
    ]


def _swap_under_stream(
    node: NodeProc,
    versions: Iterator[PackedBundle],
    fps: float,
    swaps: int,
    baseline_s: float,
    first_frames: int = 5,
    plant: Plant | None = None,
) -> None:
    # The camera is its own process, as on a line: the pusher's work in this process
    # must not hold up the stream's client, only the node's work may show. Versions are
    # packed before the stream starts, for the same reason.
    packed_versions = [next(versions) for _ in range(swaps)]
    context = mp.get_context("spawn")
    stop = context.Event()
    receiving, sending = context.Pipe(duplex=False)
    camera = context.Process(
        target=_camera_process,
        args=(node.address, fps, stop, sending, plant.camera if plant else None),
        daemon=True,
    )
    camera.start()
    time.sleep(baseline_s)  # a quiet baseline at the stream's own pace
    windows: list[tuple[float, float]] = []
    options = ClientOptions(tls=plant.deployer if plant else None)
    with NodeClient(node.address, options) as client:
        for packed in packed_versions:
            started = time.perf_counter()  # CLOCK_MONOTONIC: the camera's clock too
            client.push(packed)
            client.activate(packed.name, packed.version)
            windows.append((started, time.perf_counter() + 1.0))
            time.sleep(1.5)  # let the stream run on the new model between swaps
    stop.set()
    sent_at, latency_ms, version, errors = receiving.recv()
    camera.join(30)
    stats = StreamStats(sent_at=sent_at, latency_ms=latency_ms, version=version, errors=errors)
    first_swap = windows[0][0]
    before, during, outside = [], [], []
    for frame_id, latency in stats.latency_ms.items():
        sent = stats.sent_at[frame_id]
        if any(start <= sent <= end for start, end in windows):
            during.append(latency)
        else:
            outside.append(latency)
            if sent < first_swap:
                before.append(latency)
    lost = len(stats.sent_at) - len(stats.latency_ms)
    base_p99 = sorted(before)[int(0.99 * len(before))] if before else float("nan")
    delayed = sum(latency > 2 * base_p99 for latency in during)
    print(f"\nswap under a {fps:.0f} frames/s stream ({swaps} swaps on {node.address})")
    print(f"  before swaps: {_percentiles(before)}")
    print(f"  during swaps: {_percentiles(during)}")
    print(f"  failed frames: {len(stats.errors)} stream errors, {lost} frames without an answer")
    print(
        f"  delayed frames (> 2x baseline p99 = {2 * base_p99:.2f} ms): {delayed} of {len(during)}"
    )
    during_p99 = sorted(during)[int(0.99 * len(during))] if during else float("nan")
    met = during_p99 <= 1.5 * base_p99 and not delayed
    print(
        f"  p99 during / before: {during_p99 / base_p99:.2f}x  "
        f"(goal <= 1.5x and no frame over 2x: {'met' if met else 'NOT met'})"
    )
    # The quiet baseline is a few seconds: on a shared machine one neighbour's burst
    # sets its p99. Frames outside every swap window (before, between, after) are a
    # steadier yardstick taken over the same minutes as the swaps.
    steady_p99 = sorted(outside)[int(0.99 * len(outside))] if outside else float("nan")
    over = sum(latency > 2 * steady_p99 for latency in during)
    print(f"  outside swaps: {_percentiles(outside)}")
    print(
        f"  p99 during / outside: {during_p99 / steady_p99:.2f}x, "
        f"{over} of {len(during)} frames over 2x its p99"
    )
    first = _first_on_each_version(stats, first_frames)
    base_p50 = statistics.median(before) if before else float("nan")
    print(f"  first {first_frames} frames on each new version: {_percentiles(first)}")
    if first:
        print(f"    their p50 / steady p50: {statistics.median(first) / base_p50:.2f}x")
    for error in stats.errors:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,4,16", help="comma-separated node counts")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fps", type=float, default=50.0)
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--baseline-s", type=float, default=5.0)
    parser.add_argument("--first-frames", type=int, default=5, help="frames per new version")
    parser.add_argument("--bundle", type=Path, help="a bundle with golden images; default tiny")
    parser.add_argument("--tls", action="store_true", help="mutual TLS with a bench plant CA")
    args = parser.parse_args()
    counts = [int(item) for item in args.nodes.split(",")]
    with tempfile.TemporaryDirectory(prefix="linewatch-bench-rollout-") as tmp:
        work = Path(tmp)
        pair = generate_key_pair(work / "keys")
        base = args.bundle or _tiny_bundle(work)
        names = tuple(f"bench-{index}" for index in range(max(counts)))
        versions = _versions(base, work, pair.private_key, len(counts) + args.swaps, names)
        started = time.perf_counter()
        plant = make_plant(work / "pki", max(counts)) if args.tls else None
        options = ClientOptions(tls=plant.deployer if plant else None)
        nodes = _start_nodes(max(counts), work, pair.public_key, plant)
        print(f"{len(nodes)} node processes up in {time.perf_counter() - started:.1f}s")
        spec = load_bundle(base).manifest.input
        print(f"bundle {base} input {spec.height}x{spec.width}")
        try:
            _rollouts(nodes, counts, versions, args.concurrency, options)
            # A node has its box to itself on a line. Sixteen node processes on two cores
            # stall one another now and then (~150 ms, swap or no swap), and the kernel
            # still writes back the bundles just pushed: stop the others and let the disk
            # settle, so the swap figures show the swap alone.
            for node in nodes[1:]:
                node.process.terminate()
            os.sync()
            _swap_under_stream(
                nodes[0], versions, args.fps, args.swaps, args.baseline_s, args.first_frames, plant
            )
        finally:
            for node in nodes:
                node.process.terminate()
            for node in nodes:
                node.process.wait(30)


if __name__ == "__main__":
    main()
