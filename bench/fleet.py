"""Bench a fleet: N simulated nodes against one Mosquitto and one, then two, collectors.

Each simulated node is a light paho client speaking the real protocol: protobuf
messages from ``edge.mqtt.messages`` (heartbeats, alerts with a thumbnail,
samples with a PNG) on the real topics at QoS 1, at the rates given. A few
publisher processes hold many clients each. The collectors are real
``linewatch collect`` processes with ``--metrics``; their lag histogram (capture
at the node to commit) gives the end-to-end p50/p99. CPU of the broker, the
collectors, the database and the publishers is sampled from /proc, and the first
limit is named: the process nearest its ceiling (one core for Mosquitto and for
a collector's writer) or, when none is, the machine's cores.

    python bench/fleet.py [--nodes 200] [--seconds 20] [--alert-rate 1] [--postgres URL]

On a shared machine the figures move with the neighbours' load; rerun on an idle one.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, select

from bench.fleet_probes import cpu_s, lag_quantile, machine_busy_s, postgres_pids, received
from cloud.db.migrate import upgrade
from cloud.db.models import Alert, Sample
from cloud.db.session import make_engine, make_session_factory
from edge.frames import Heartbeat, InspectedFrame, ModelIdentity
from edge.mqtt.messages import build_alert, build_sample, build_status
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, topic_for
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import Broker, free_port

LINEWATCH = str(Path(sys.executable).parent / "linewatch")
_TICK_S = 0.05


@dataclass(frozen=True)
class PhaseResult:
    """One phase: what was offered, stored, how late, and who used the CPU (cores)."""

    collectors: int
    published: int
    stored: int
    elapsed_s: float
    rows_per_s: float
    backlog: int
    drain_s: float
    p50_s: float
    p99_s: float
    cores: dict[str, float]
    machine_busy: float  # share of all cores busy, whoever used them


@dataclass(frozen=True)
class Rates:
    """Per node: messages per second, and the sample image side."""

    alert: float
    sample: float
    heartbeat_s: float
    sample_side_px: int


def _frame(side_px: int, seed: int) -> InspectedFrame:
    rng = np.random.default_rng(seed)
    return InspectedFrame(
        frame_id=f"fleet-{seed}",
        captured_at_ms=int(time.time() * 1000),
        image=rng.integers(0, 256, size=(side_px, side_px, 3), dtype=np.uint8),
        anomaly_map=rng.random((64, 64), dtype=np.float32) * 6.0,
        image_score=4.0,
        verdict=Verdict.ABNORMAL,
        threshold=3.0,
        uncertain_low=2.0,
        model=ModelIdentity("fleet", "1", "00" * 32),
        latency_ms=2.0,
    )


def _stamped(template: Any, node: NodeIdentity) -> bytes:
    """A copy of ``template`` from ``node``, with a fresh id, captured now."""
    message = type(template)()
    message.CopyFrom(template)
    message.id, message.site, message.line, message.node = (
        str(uuid.uuid4()), node.site, node.line, node.node
    )  # fmt: skip
    message.captured_at_ms = int(time.time() * 1000)
    return bytes(message.SerializeToString())


def publish_nodes(
    port: int, first: int, count: int, rates: Rates, seconds: float, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    """One publisher process: ``count`` nodes, each its own paho client, until ``seconds``."""
    nodes = [
        NodeIdentity("fleet", f"line{(first + i) // 20}", f"cam{first + i:04d}")
        for i in range(count)
    ]
    alert_template = build_alert(_frame(64, first), nodes[0], sample_id="")
    sample_template = build_sample(_frame(rates.sample_side_px, first + 1), nodes[0])
    clients = []
    for _ in nodes:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients.append(client)
    published = 0
    due = {"alert": 0.0, "sample": 0.0}
    next_heartbeat = 0.0
    started = time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        due["alert"] += rates.alert * _TICK_S
        due["sample"] += rates.sample * _TICK_S
        for node, client in zip(nodes, clients, strict=True):
            for kind, template in (("alert", alert_template), ("sample", sample_template)):
                if due[kind] >= 1.0:
                    payload = _stamped(template, node)
                    client.publish(topic_for(node, MessageKind(kind)), payload, qos=1)
                    published += 1
            if now >= next_heartbeat:
                status = build_status(
                    node, online=True, grpc_address="10.0.0.1:50051", heartbeat=Heartbeat()
                )
                client.publish(
                    topic_for(node, MessageKind.STATUS), status.SerializeToString(), qos=1
                )
        for kind in due:
            due[kind] -= int(due[kind])
        if now >= next_heartbeat:
            next_heartbeat = now + rates.heartbeat_s
        time.sleep(max(0.0, _TICK_S - (time.monotonic() - now)))  # paces the simulated cameras
    for client in clients:
        client.disconnect()
        client.loop_stop()
    out.put(published)


def _stored(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            alerts = session.scalar(select(func.count()).select_from(Alert)) or 0
            samples = session.scalar(select(func.count()).select_from(Sample)) or 0
            return int(alerts + samples)
    finally:
        engine.dispose()


def _start_collectors(
    count: int, broker: Broker, db_url: str, workdir: Path
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    processes, ports = [], []
    for index in range(count):
        port = free_port()
        command = [
            LINEWATCH,
            "collect",
            "--mqtt",
            broker.url,
            "--db",
            db_url,
            "--store",
            str(workdir / "store"),
            "--id",
            f"fleet-collector-{index}",
            "--metrics",
            f"127.0.0.1:{port}",
        ]
        with (workdir / f"collector-{index}.log").open("wb") as log:  # the child keeps a copy
            processes.append(subprocess.Popen(command, stderr=log))
        ports.append(port)
    return processes, ports


def _wait_subscribed(broker: Broker, ports: list[int]) -> None:
    """Publish probe heartbeats until every collector in the share group has received one."""
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    probe.connect("127.0.0.1", broker.port)
    probe.loop_start()
    node = NodeIdentity("fleet", "probe", "probe")
    deadline = time.monotonic() + 60
    pace = threading.Event()
    try:
        while time.monotonic() < deadline:
            status = build_status(node, online=True, grpc_address="", heartbeat=Heartbeat())
            probe.publish(topic_for(node, MessageKind.STATUS), status.SerializeToString(), qos=1)
            if all(received(port) > 0 for port in ports):
                return
            pace.wait(0.2)
    finally:
        probe.disconnect()
        probe.loop_stop()
    msg = "collectors did not subscribe within 60 s"
    raise TimeoutError(msg)


def run_phase(collectors: int, db_url: str, args: argparse.Namespace, rates: Rates) -> PhaseResult:
    """One broker, ``collectors`` collectors, ``args.nodes`` nodes for ``args.seconds``."""
    with tempfile.TemporaryDirectory(prefix="lw-fleet-") as folder:
        workdir = Path(folder)
        broker = Broker(workdir / "broker")
        broker.start()
        processes, ports = _start_collectors(collectors, broker, db_url, workdir)
        try:
            _wait_subscribed(broker, ports)
            before = _stored(db_url)
            pids = {
                "broker": [broker._process.pid],
                "collectors": [p.pid for p in processes],  # type: ignore[union-attr]
                "database": postgres_pids() if db_url.startswith("postgresql") else [],
            }
            cpu_before = {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}
            queue: mp.Queue[int] = mp.Queue()
            per_process = -(-args.nodes // args.processes)
            publishers = [
                mp.Process(
                    target=publish_nodes,
                    args=(
                        broker.port,
                        i * per_process,
                        min(per_process, args.nodes - i * per_process),
                        rates,
                        args.seconds,
                        queue,
                    ),
                )
                for i in range(args.processes)
                if i * per_process < args.nodes
            ]
            machine_before = machine_busy_s()
            started = time.monotonic()
            for p in publishers:
                p.start()
            pids["publishers"] = [p.pid for p in publishers if p.pid]
            cpu_before["publishers"] = 0.0
            published = sum(queue.get(timeout=args.seconds + 120) for _ in publishers)
            cpu_publishers = sum(cpu_s(p) for p in pids["publishers"])
            for p in publishers:
                p.join()
            elapsed = time.monotonic() - started
            machine_after = machine_busy_s()
            stored_at_end = _stored(db_url) - before
            cpu = {
                k: sum(cpu_s(p) for p in v) - cpu_before[k]
                for k, v in pids.items()
                if k != "publishers"
            }
            cpu["publishers"] = cpu_publishers
            drain_deadline = time.monotonic() + 120
            while _stored(db_url) - before < published and time.monotonic() < drain_deadline:
                time.sleep(0.2)  # polls the database while the backlog drains
            drain_s = time.monotonic() - started - elapsed
            stored = _stored(db_url) - before
            p50, p99 = lag_quantile(ports, 0.5), lag_quantile(ports, 0.99)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            broker.stop()
    return PhaseResult(
        collectors=collectors,
        published=published,
        stored=stored,
        elapsed_s=elapsed,
        rows_per_s=stored_at_end / elapsed,
        backlog=published - stored_at_end,
        drain_s=drain_s,
        p50_s=p50,
        p99_s=p99,
        cores={k: v / elapsed for k, v in cpu.items()},  # cores used on average
        machine_busy=(machine_after[0] - machine_before[0])
        / max(machine_after[1] - machine_before[1], 1e-9),
    )


def first_limit(result: PhaseResult) -> str:
    """Name the component nearest its ceiling (one core for the broker and each collector)."""
    cpus = float(os.cpu_count() or 1)
    ceilings = {"broker": 1.0, "collectors": float(result.collectors), "database": cpus}
    used = {k: result.cores.get(k, 0.0) / ceiling for k, ceiling in ceilings.items()}
    name, share = max(used.items(), key=lambda item: item[1])
    ours = sum(result.cores.values()) / cpus
    if share >= 0.8:
        limit = f"{name} CPU ({share:.0%} of its ceiling)"
    elif result.machine_busy >= 0.85:
        limit = f"the machine's cores ({result.machine_busy:.0%} busy, {ours:.0%} ours)"
    else:
        limit = f"none near (busiest: {name} at {share:.0%} of its ceiling)"
    kept_up = result.backlog <= max(10, result.published // 100)
    return f"kept up; nearest: {limit}" if kept_up else f"fell behind; limit: {limit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4, help="publisher processes")
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per phase")
    parser.add_argument("--alert-rate", type=float, default=1.0, help="alerts/s per node")
    parser.add_argument("--sample-rate", type=float, default=0.2, help="samples/s per node")
    parser.add_argument("--sample-side-px", type=int, default=128, help="sample image side")
    parser.add_argument("--heartbeat-s", type=float, default=5.0)
    parser.add_argument("--postgres", help="postgresql:// URL of an empty or Linewatch database")
    parser.add_argument("--collectors", default="1,2", help="phases: collectors sharing the stream")
    args = parser.parse_args()
    rates = Rates(args.alert_rate, args.sample_rate, args.heartbeat_s, args.sample_side_px)
    results = []
    with tempfile.TemporaryDirectory(prefix="lw-fleet-db-") as folder:
        db_url = args.postgres or f"sqlite:///{folder}/fleet.db"
        upgrade(db_url)
        for count in (int(c) for c in args.collectors.split(",")):
            results.append(run_phase(count, db_url, args, rates))
    offered = args.nodes * (args.alert_rate + args.sample_rate)
    database = "postgresql" if args.postgres else "sqlite"
    print(
        f"{args.nodes} nodes, offered {offered:.0f} rows/s "
        f"(+{args.nodes / args.heartbeat_s:.0f} heartbeats/s), {database}, "
        f"{os.cpu_count()} cores (shared machine: noisy)"
    )
    header = ["collectors", "rows/s", "p50 ms", "p99 ms", "backlog", "drain s"]
    print(" ".join(f"{h:>10}" for h in header), " cores broker/collectors/db/publishers; limit")
    for r in results:
        c = r.cores
        cells = [r.collectors, f"{r.rows_per_s:.0f}", f"{1000 * r.p50_s:.0f}"]
        cells += [f"{1000 * r.p99_s:.0f}", r.backlog, f"{r.drain_s:.1f}"]
        cores = "/".join(f"{c.get(k, 0.0):.2f}" for k in ("broker", "collectors", "database"))
        print(
            " ".join(f"{cell:>10}" for cell in cells),
            f" {cores}/{c.get('publishers', 0.0):.2f}; {first_limit(r)}",
        )


if __name__ == "__main__":
    main()
