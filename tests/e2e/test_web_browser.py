"""A person in Chromium: log in, watch an alert arrive live, review with the keyboard.

The alert comes from a real node sink through a real Mosquitto and collector;
the web app runs as ``linewatch web``. Screenshots of each page go to the test's
temp folder (never committed). Debian's chromium is used: Playwright's own
browser download is not reachable.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError

import pytest
from sqlalchemy import select

from cloud.db.models import Review, Role, Sample
from cloud.demo.processes import free_port
from cloud.pki import init_ca, issue_certificate, load_ca
from edge.runtime.policy import Verdict
from edge.runtime.tls import Role as CertRole
from tests.plugins.mqtt import Broker, CollectorFactory, FrameFactory, SinkFactory, wait_for
from tests.web_data import PASSWORD, WebData

pytestmark = pytest.mark.e2e

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
LINEWATCH = str(Path(sys.executable).parent / "linewatch")


def _answers(url: str, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))  # verified, as a person's browser would
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as response:
            return bool(response.status == 200)
    except (URLError, OSError):
        return False


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[tuple[str, WebData]]:
    """``linewatch web`` over HTTPS on a free port and a fresh database; stopped after."""
    data = WebData.create(tmp_path / "data")
    data.add_user("alice", Role.EXPERT)
    init_ca(tmp_path / "pki")
    ca = load_ca(tmp_path / "pki")
    web_cert = issue_certificate(ca, "web", CertRole.WEB)
    port = free_port()
    command = [
        LINEWATCH, "web", "--db", data.db_url, "--store", str(tmp_path / "store"),
        "--listen", f"127.0.0.1:{port}", "--var-dir", str(tmp_path / "var"),
        "--tls-cert", str(web_cert.certificate), "--tls-key", str(web_cert.private_key),
    ]  # fmt: skip
    env = {**os.environ, "LINEWATCH_LIVE_POLL_S": "0.1", "LINEWATCH_EMBED_INTERVAL_S": "0.2"}
    with (tmp_path / "web.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log, cwd=tmp_path, env=env)
    url = f"https://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            return server.poll() is None and _answers(f"{url}/login", ca.certificate_path)

        wait_for(ready, 60, "linewatch web")
        yield url, data
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        data.close()


def test_live_alert_and_keyboard_review(
    web_server: tuple[str, WebData],
    mosquitto: Broker,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent; install Debian's chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    url, data = web_server
    shots = tmp_path / "screenshots"
    start_collector(mosquitto.url, data.db_url)
    sink = start_sink(mosquitto.url, heartbeat_interval_s=0.2)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The plant CA is not in this headless browser's trust store; urllib above
            # verified the server against it.
            page = browser.new_page(ignore_https_errors=True)
            page.goto(f"{url}/alerts")
            expect(page).to_have_url(f"{url}/login?next=/alerts")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{url}/alerts")
            expect(page.locator("#live-state")).to_have_text("(live)")
            page.screenshot(path=shots / "alerts-empty.png")

            sink.handle(make_frame(Verdict.ABNORMAL))  # a node flags a frame
            expect(page.locator(".alert-row")).to_have_count(1, timeout=20_000)
            expect(page.locator(".alert-row")).to_contain_text("cam3")
            page.screenshot(path=shots / "alerts-live.png")

            sink.handle(make_frame(Verdict.UNCERTAIN))
            wait_for(lambda: len(_sample_ids(data)) == 2, 20, "both samples stored")
            abnormal_id, uncertain_id = _sample_ids(data)

            page.goto(f"{url}/review")
            sample = page.locator("#sample")
            expect(sample).to_have_attribute("data-sample-id", uncertain_id)  # uncertain first
            expect(page.locator("#queue-size")).to_have_text("2")
            page.screenshot(path=shots / "review-overlay.png")
            page.keyboard.press("o")
            expect(page.locator("#picture")).not_to_have_class("picture show-overlay")
            page.screenshot(path=shots / "review-frame.png")

            page.keyboard.press("t")
            page.keyboard.type("crack")
            page.keyboard.press("Escape")
            page.keyboard.press("d")
            expect(sample).to_have_attribute("data-sample-id", abnormal_id)
            expect(page.locator("#queue-size")).to_have_text("1")
            expect(page.locator("#reviewed-today")).to_have_text("1")
            similar = page.locator(f'#similar a[data-sample-id="{uncertain_id}"]')
            expect(similar).to_contain_text("defect")  # the reviewed case, beside the next one
            page.screenshot(path=shots / "review-next.png")

            page.keyboard.press("n")
            expect(page.locator("#queue-empty")).to_be_visible()
            page.screenshot(path=shots / "review-empty.png")
        finally:
            browser.close()

    with data.sessions() as session:
        reviews = session.execute(
            select(Review.sample_id, Review.label, Review.defect_type, Review.reviewer).order_by(
                Review.id
            )
        ).all()
    assert [tuple(r) for r in reviews] == [
        (uncertain_id, "defect", "crack", "alice"),
        (abnormal_id, "normal", None, "alice"),
    ]
    assert len(list(shots.glob("*.png"))) == 6


def _sample_ids(data: WebData) -> list[str]:
    """Sample ids, abnormal first then uncertain."""
    with data.sessions() as session:
        rows = session.execute(select(Sample.id, Sample.verdict).order_by(Sample.verdict)).all()
    return [sample_id for sample_id, _ in rows]
