"""The demo's script: broker, collector and two nodes up; train, register, promote, deploy; watch.

Cloud steps run as the commands a user would type, so the demo shows the
product as it is used; their output goes to the terminal as it comes. gRPC is
mutual TLS as in a plant: a CA, one certificate per node and the deployer's are
made in the work folder first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from cloud.db import make_engine, make_session_factory, upgrade
from cloud.db.queries import list_nodes
from cloud.demo.live import collected_counts, node_view
from cloud.demo.processes import ManagedProcess, free_port, mosquitto_command, wait_until
from cloud.errors import DeployError
from cloud.pki import init_ca, issue_certificate, load_ca
from cloud.synth import generate_dataset, write_line_video
from edge.runtime.tls import CA_FILE, CRL_FILE, Role

__all__ = ["DemoSettings", "run_demo"]

Echo = Callable[[str], None]
LINE = "line1"


@dataclass(frozen=True)
class DemoSettings:
    """Where the demo works and how long it watches the line."""

    workdir: Path = Path("var/demo")
    duration_s: float = 60.0  # 0: until Ctrl-C
    category: str = "metal"
    nodes: tuple[str, ...] = ("cam-07", "cam-08")
    seed: int = 0


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(command: list[str], echo: Echo, env: dict[str, str] | None = None) -> None:
    echo(
        "$ " + " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
    )
    completed = subprocess.run(command, check=False, env=None if env is None else os.environ | env)
    if completed.returncode != 0:
        msg = f"demo: `{' '.join(command[:2])}` failed with exit code {completed.returncode}"
        raise DeployError(msg)


class _Demo:
    def __init__(self, settings: DemoSettings, echo: Echo, stack: ExitStack) -> None:
        self.settings, self.echo, self.stack = settings, echo, stack
        self.work = settings.workdir.resolve()
        self.db_url = f"sqlite:///{self.work / 'linewatch.db'}"
        self.tracking_uri = f"sqlite:///{self.work / 'mlflow' / 'mlflow.db'}"
        self.keys = self.work / "keys"
        self.pki = self.work / "keys" / "pki"
        self.metrics_urls: dict[str, str] = {}

    def start(self, name: str, command: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, command, self.work / "logs" / f"{name}.log")
        self.stack.callback(process.stop)
        return process

    def prepare(self) -> tuple[str, Path]:
        self.work.mkdir(parents=True, exist_ok=True)
        if not (self.keys / "signing.key").is_file():
            _run([_tool("linewatch"), "keys", "init", "--out", str(self.keys)], self.echo)
        self.make_certificates()
        data = self.work / "data" / self.settings.category
        if not data.is_dir():
            self.echo(f"synthesising {self.settings.category} parts into {data}")
            generate_dataset(data, seed=self.settings.seed, category=self.settings.category)
        upgrade(self.db_url)
        port = free_port()
        self.start("mosquitto", mosquitto_command(self.work, port))
        return f"mqtt://127.0.0.1:{port}", data

    def make_certificates(self) -> None:
        """The plant CA, each node's certificate and the deployer's (kept across runs)."""
        if not (self.pki / CA_FILE).is_file():
            init_ca(self.pki)
            self.echo(f"plant CA made in {self.pki}: gRPC between deployer and nodes is mTLS")
        ca = load_ca(self.pki)
        wanted = [(node, Role.NODE) for node in self.settings.nodes]
        for name, role in [*wanted, ("deployer", Role.DEPLOYER)]:
            if not (self.pki / f"{role.value}-{name}.pem").is_file():
                issue_certificate(ca, name, role)

    def tls_flags(self, role: Role, name: str) -> list[str]:
        """The ``--tls-*`` flags of one party, with the CA and (for nodes) the CRL."""
        stem = self.pki / f"{role.value}-{name}"
        flags = ["--tls-cert", f"{stem}.pem", "--tls-key", f"{stem}.key"]
        flags += ["--tls-ca", str(self.pki / CA_FILE)]
        if role is Role.NODE:
            flags += ["--tls-crl", str(self.pki / CRL_FILE)]
        return flags

    def start_nodes(self, mqtt_url: str) -> None:
        for index, node in enumerate(self.settings.nodes):
            folder = self.work / "nodes" / node
            video = write_line_video(
                folder / "line.avi",
                seed=self.settings.seed + 100 + index,
                category=self.settings.category,
                n_frames=250,
                defect_rate=0.15,
            )
            metrics_port = free_port()
            self.metrics_urls[node] = f"http://127.0.0.1:{metrics_port}/metrics"
            self.start(
                node,
                [
                    _tool("linewatch-edge"), "serve", "--camera", str(video), "--loop",
                    "--grpc", f"127.0.0.1:{free_port()}", "--site", "demo", "--line", LINE,
                    "--node", node, "--mqtt", mqtt_url, "--outbox", str(folder / "outbox"),
                    "--model-dir", str(folder / "models"), "--record-dir", str(folder / "record"),
                    "--trusted-key", str(self.keys / "signing.pub"),
                    "--metrics", f"127.0.0.1:{metrics_port}", *self.tls_flags(Role.NODE, node),
                ],
            )  # fmt: skip
        self.echo(f"edge nodes {', '.join(self.settings.nodes)} started, waiting for a model")

    def start_collector(self, mqtt_url: str) -> None:
        store = self.work / "samples"
        self.start(
            "collector",
            [_tool("linewatch"), "collect", "--mqtt", mqtt_url, "--db", self.db_url,
             "--store", str(store)],
        )  # fmt: skip
        sessions = make_session_factory(make_engine(self.db_url))

        def nodes_online() -> bool:
            with sessions() as session:
                return sum(node.online for node in list_nodes(session)) >= len(self.settings.nodes)

        wait_until(nodes_online, 60.0, "both nodes announcing themselves to the collector")
        self.echo("collector running; both nodes online in the database")

    def train_and_ship(self, data: Path) -> None:
        bundle = self.work / "bundles" / self.settings.category
        name = self.settings.category
        common = ["--tracking-uri", self.tracking_uri]
        _run(
            [_tool("linewatch"), "train", "--data", str(data), "--out", str(bundle), "--name",
             name, "--register", "--signing-key", str(self.keys / "signing.key"), *common],
            self.echo,
        )  # fmt: skip
        _run(
            [_tool("linewatch"), "evaluate", "--bundle", str(bundle), "--data", str(data),
             "--json", str(self.work / "report.json"), "--report-dir", str(self.work / "report")],
            self.echo,
        )  # fmt: skip
        version = _latest_version(self.tracking_uri, name)
        _run([_tool("linewatch"), "promote", "--name", name, "--version", str(version), *common],
             self.echo)  # fmt: skip
        _run(
            [_tool("linewatch"), "deploy", "--name", name, "--alias", "production", "--line",
             LINE, "--canary", "1", "--db", self.db_url, *common,
             *self.tls_flags(Role.DEPLOYER, "deployer")],
            self.echo,
            env={"LINEWATCH_SIGNING_KEY": str(self.keys / "signing.key")},  # signs the release
        )  # fmt: skip

    def watch(self) -> None:
        sessions = make_session_factory(make_engine(self.db_url))
        duration = self.settings.duration_s
        self.echo("watching the line" + (f" for {duration:.0f}s" if duration else "; Ctrl-C stops"))
        started = time.monotonic()
        while not duration or time.monotonic() - started < duration:
            parts = []
            for node, url in self.metrics_urls.items():
                view = node_view(url)
                if view is None:
                    parts.append(f"{node}: not answering")
                    continue
                counts = " ".join(
                    f"{k} {view.verdicts.get(k, 0)}" for k in ("normal", "uncertain", "abnormal")
                )
                parts.append(f"{node} [{view.model}] frames {view.frames}: {counts}")
            alerts, samples = collected_counts(sessions)
            self.echo(" | ".join(parts) + f" | collected: {alerts} alerts, {samples} samples")
            time.sleep(2.0)  # the refresh interval of the live view

    def where_to_look(self) -> None:
        self.echo("\nwhere to look:")
        self.echo(
            f"  evaluation report  {self.work / 'report.json'} and {self.work / 'report'}/*.png"
        )
        self.echo(f"  MLflow UI          mlflow ui --backend-store-uri {self.tracking_uri}")
        self.echo(f"  database           linewatch alerts list --db {self.db_url}")
        self.echo(f"                     linewatch samples list --db {self.db_url}")
        self.echo(f"  sample store       {self.work / 'samples'}")
        self.echo(f"  deployments        linewatch deploy status --db {self.db_url}")
        self.echo(f"  logs               {self.work / 'logs'}")


def _latest_version(tracking_uri: str, name: str) -> int:
    from cloud.registry import latest_version_number, load_registry_settings

    return latest_version_number(name, settings=load_registry_settings(tracking_uri=tracking_uri))


def run_demo(settings: DemoSettings, echo: Echo) -> None:
    """Run the whole system on this machine; everything started is stopped on return."""
    with ExitStack() as stack:
        demo = _Demo(settings, echo, stack)
        mqtt_url, data = demo.prepare()
        demo.start_nodes(mqtt_url)
        demo.start_collector(mqtt_url)
        try:
            demo.train_and_ship(data)
            demo.watch()
        except KeyboardInterrupt:
            echo("\nstopping")
        finally:
            echo("stopping nodes, collector and broker")
    demo.where_to_look()
