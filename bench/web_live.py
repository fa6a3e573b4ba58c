"""Alerts reaching an open page: from the edge verdict to the browser, p50/p99.

Usage::

    python bench/web_live.py [--alerts 200] [--rate 20] [--poll-s 0.5 0.1]

The whole path runs for real on this machine: a node's MQTT sink publishes
abnormal frames (QoS 1, through its durable outbox) to a Mosquitto broker, the
collector stores them in a SQLite database, ``linewatch web`` serves the live
feed (Server-Sent Events polling the database every ``--poll-s``), and a
headless Chromium holds the Alerts page open. The browser stamps each event on
arrival; latency is that stamp minus the frame's ``captured_at`` (the moment the
node judged it; one clock, one machine). One row per poll interval, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.error import URLError

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from cloud.collector import Collector  # noqa: E402
from cloud.collector.settings import CollectorSettings  # noqa: E402
from cloud.collector.store import BlobStore  # noqa: E402
from cloud.db.models import Role  # noqa: E402
from cloud.db.session import make_engine, make_session_factory  # noqa: E402
from cloud.demo.processes import free_port  # noqa: E402
from cloud.pki import init_ca, issue_certificate, load_ca  # noqa: E402
from edge.mqtt import MqttConfig, build_mqtt_sink  # noqa: E402
from edge.runtime.mqtt_link import NodeIdentity  # noqa: E402
from edge.runtime.policy import Verdict  # noqa: E402
from edge.runtime.tls import Role as CertRole  # noqa: E402
from tests.plugins.mqtt import Broker, build_frame  # noqa: E402
from tests.web_data import PASSWORD, WebData  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Stamp every live alert on arrival, in the page, on the browser's own clock.
_LISTEN = """() => {
  window.__arrivals = [];
  const source = new EventSource('/api/v1/alerts/stream');
  source.addEventListener('alert', (event) => {
    const alert = JSON.parse(event.data);
    window.__arrivals.push({captured_at: alert.captured_at, arrived_ms: Date.now()});
  });
}"""


def _answers(url: str, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as response:
            return bool(response.status == 200)
    except (URLError, OSError):
        return False


def _wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise SystemExit(msg)
        time.sleep(0.05)


def _start_web(work: Path, data: WebData, poll_s: float) -> tuple[subprocess.Popen[bytes], str]:
    """``linewatch web`` over HTTPS, as a plant runs it, with a certificate of a fresh CA."""
    init_ca(work / "pki")
    ca = load_ca(work / "pki")
    cert = issue_certificate(ca, "web", CertRole.WEB)
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "linewatch"), "web", "--db", data.db_url,
        "--store", str(work / "store"), "--listen", f"127.0.0.1:{port}",
        "--var-dir", str(work / "var"),
        "--tls-cert", str(cert.certificate), "--tls-key", str(cert.private_key),
    ]  # fmt: skip
    env = {**os.environ, "LINEWATCH_LIVE_POLL_S": str(poll_s)}
    with (work / "web.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log, cwd=work, env=env)
    url = f"https://127.0.0.1:{port}"
    ready = f"{url}/login"
    _wait(lambda: server.poll() is None and _answers(ready, ca.certificate_path), 90, "web")
    return server, url


def _latencies_ms(arrivals: list[dict[str, object]]) -> list[float]:
    from datetime import datetime

    out = []
    for arrival in arrivals:
        captured = datetime.fromisoformat(str(arrival["captured_at"])).timestamp() * 1000.0
        out.append(float(arrival["arrived_ms"]) - captured)  # type: ignore[arg-type]
    return out


def run(poll_s: float, alerts: int, rate: float) -> list[float]:
    """Send ``alerts`` abnormal frames at ``rate``/s; return edge-to-browser latencies."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lw-web-live-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        data = WebData.create(work / "data")
        data.add_user("bench", Role.OPERATOR)
        settings = CollectorSettings(
            mqtt_url=broker.url, db_url=data.db_url, store_dir=work / "store"
        )
        engine = make_engine(data.db_url)
        collector = Collector(settings, make_session_factory(engine), BlobStore(work / "store"))
        collector.start()
        sink = build_mqtt_sink(
            MqttConfig.from_url(broker.url, outbox_dir=work / "outbox"),
            NodeIdentity("plant1", "line1", "cam-01"),
            "127.0.0.1:50051",
        )
        server, url = _start_web(work, data, poll_s)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(ignore_https_errors=True)  # the plant CA is not in it
                page.goto(f"{url}/login")
                page.fill("input[name=username]", "bench")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/alerts")
                page.evaluate(_LISTEN)
                time.sleep(1.0)  # let the stream open before the first alert
                for index in range(alerts):
                    sink.handle(build_frame(index, Verdict.ABNORMAL))
                    time.sleep(1.0 / rate)
                _wait(
                    lambda: page.evaluate("window.__arrivals.length") >= alerts,
                    60,
                    "every alert in the browser",
                )
                arrivals = json.loads(page.evaluate("JSON.stringify(window.__arrivals)"))
                browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
            sink.close()
            collector.stop()
            engine.dispose()
            data.close()
            broker.stop()
    return _latencies_ms(arrivals)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    parser.add_argument("--poll-s", type=float, nargs="+", default=[0.5, 0.1])
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is absent: apt-get install -y chromium"
        raise SystemExit(msg)
    print(f"edge verdict -> browser, {args.alerts} alerts at {args.rate:g}/s")
    print(f"{'live poll':>10} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for poll_s in args.poll_s:
        latencies = run(poll_s, args.alerts, args.rate)
        print(
            f"{poll_s:>9g}s {statistics.median(latencies):9.1f} "
            f"{_percentile(latencies, 0.99):9.1f} {max(latencies):9.1f}"
        )


if __name__ == "__main__":
    main()
