"""The pages as a browser gets them: login redirects, forms with CSRF, images, similar cases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cloud.db.models import Role, Sample, SampleEmbedding
from cloud.web.images import MISSING_HEADER
from tests.plugins.mqtt import wait_for
from tests.web_data import PASSWORD, WebData, login, noisy_copy_png, pattern_png, web_client

pytestmark = pytest.mark.integration

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def data(tmp_path: Path) -> Iterator[WebData]:
    made = WebData.create(tmp_path / "data")
    made.add_user("alice", Role.EXPERT)
    made.add_user("oscar", Role.OPERATOR)
    yield made
    made.close()


@pytest.fixture
def client(data: WebData, tmp_path: Path) -> Iterator[TestClient]:
    with web_client(data, tmp_path) as made:
        yield made


def _form_login(client: TestClient, name: str, password: str) -> object:
    page = client.get("/login")
    token = _CSRF.search(page.text)
    assert token is not None
    return client.post(
        "/login",
        data={
            "username": name,
            "password": password,
            "csrf_token": token.group(1),
            "next": "/nodes",
        },
        follow_redirects=False,
    )


def test_no_page_without_login(client: TestClient) -> None:
    for path in ("/", "/alerts", "/review", "/nodes", "/models", "/users", "/api/docs"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")
    assert client.get("/login").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_form_login_same_message_for_wrong_user_or_password(client: TestClient) -> None:
    wrong_password = _form_login(client, "alice", "not-it-at-all")
    wrong_user = _form_login(client, "zed", "not-it-at-all")
    assert wrong_password.status_code == wrong_user.status_code == 401  # type: ignore[attr-defined]
    assert "Wrong user name or password." in wrong_password.text  # type: ignore[attr-defined]
    assert "Wrong user name or password." in wrong_user.text  # type: ignore[attr-defined]
    ok = _form_login(client, "alice", PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"] == "/nodes"  # type: ignore[attr-defined]


def test_form_without_csrf_is_refused(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    login(client, "alice")
    refused = client.post(f"/review/{sample_id}", data={"label": "normal"}, follow_redirects=False)
    assert refused.status_code == 403
    login_without_token = TestClient(client.app).post(
        "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert login_without_token.status_code == 403


def test_review_from_the_queue_page(client: TestClient, data: WebData) -> None:
    abnormal = data.add_sample(verdict="abnormal")
    uncertain = data.add_sample(verdict="uncertain")
    login(client, "alice")
    page = client.get("/review")
    assert page.status_code == 200
    assert f'data-sample-id="{uncertain}"' in page.text  # uncertain first
    assert 'id="queue-size">2<' in page.text
    token = _CSRF.search(page.text)
    assert token is not None
    done = client.post(
        f"/review/{uncertain}",
        data={"label": "defect", "defect_type": "scratch", "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/review"
    page = client.get("/review")
    assert f'data-sample-id="{abnormal}"' in page.text
    assert 'id="queue-size">1<' in page.text and 'id="reviewed-today">1<' in page.text
    assert '<option value="scratch">' in page.text  # defect types seen so far
    skipped = client.post(
        f"/review/{abnormal}/skip", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert skipped.status_code == 303
    assert 'id="queue-empty"' in client.get("/review").text


def test_operator_sees_alerts_and_nodes_but_not_the_queue(
    client: TestClient, data: WebData
) -> None:
    sample_id = data.add_sample(verdict="abnormal")
    data.add_alert(sample_id=sample_id)
    login(client, "oscar")
    alerts = client.get("/alerts")
    assert alerts.status_code == 200
    assert f"/api/v1/samples/{sample_id}/image/overlay" in alerts.text
    assert "<svg" in alerts.text  # the per-line chart
    assert client.get("/nodes").status_code == 200
    assert "cam3" in client.get("/nodes").text
    assert client.get("/models").status_code == 200
    assert client.get("/review").status_code == 403
    assert client.get("/users").status_code == 403
    assert "/api/v1/samples/{sample_id}/review" in client.get("/api/docs").text


def test_alert_filters_huge_pages_and_sql_looking_text(client: TestClient, data: WebData) -> None:
    data.add_alert(node="cam3")
    data.add_alert(node="cam4")
    login(client, "oscar")
    assert client.get("/alerts", params={"node": "cam4"}).text.count('class="alert-row"') == 1
    injected = client.get("/alerts", params={"node": "x' OR 1=1 --", "site": "<script>"})
    assert injected.status_code == 200
    assert injected.text.count('class="alert-row"') == 0
    assert "<script>" not in injected.text.split("<main>")[1]  # escaped in the filter box
    huge = client.get("/alerts", params={"page": 10**30})
    assert huge.status_code == 200
    assert huge.text.count('class="alert-row"') == 0


def test_missing_image_shows_a_placeholder(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    with data.sessions() as session:
        from cloud.db.models import Sample

        sample = session.get(Sample, sample_id)
        assert sample is not None
        (data.store_dir / sample.image_path).unlink()
    login(client, "alice")
    for kind in ("frame", "overlay"):
        answer = client.get(f"/api/v1/samples/{sample_id}/image/{kind}")
        assert answer.status_code == 200
        assert answer.headers[MISSING_HEADER] == "missing"
        assert "image missing from the store" in answer.text
    heatmap = client.get(f"/api/v1/samples/{sample_id}/image/heatmap")
    assert heatmap.headers["content-type"] == "image/png"
    assert client.get("/review").status_code == 200
    assert client.get(f"/samples/{sample_id}").status_code == 200


def test_similar_cases_are_the_near_duplicates_on_the_same_line(
    client: TestClient, data: WebData
) -> None:
    base = pattern_png(seed=424242)
    twin = data.add_sample(image_png=noisy_copy_png(base, seed=1), verdict="abnormal")
    others = [data.add_sample(image_png=pattern_png(seed=s)) for s in range(500, 510)]
    data.add_sample(image_png=noisy_copy_png(base, seed=2), line="line9")  # other line
    query = data.add_sample(image_png=base)
    later_twin = data.add_sample(image_png=noisy_copy_png(base, seed=3))  # captured later
    token = login(client, "alice")
    client.post(
        f"/api/v1/samples/{twin}/review",
        json={"label": "defect", "defect_type": "dent"},
        headers={"X-CSRF-Token": token},
    )

    def all_embedded() -> bool:  # by the app's background pass, as in production
        with data.sessions() as session:
            samples = session.scalar(select(func.count()).select_from(Sample))
            embedded = session.scalar(select(func.count()).select_from(SampleEmbedding))
            return samples == embedded

    wait_for(all_embedded, 30.0, "the background pass to describe every sample")
    found = client.get(f"/api/v1/samples/{query}/similar?k=3").json()
    assert {row["id"] for row in found[:2]} == {twin, later_twin}  # the two near duplicates
    assert all(row["similarity"] > 0.95 for row in found[:2])
    assert {row["id"] for row in found} <= {twin, later_twin, *others}  # never line9, not itself
    assert [row["label"] for row in found if row["id"] == twin] == ["defect"]
    assert found[0]["similarity"] >= found[1]["similarity"] >= found[2]["similarity"] < 0.95
    page = client.get(f"/samples/{query}")
    assert f'href="/samples/{twin}"' in page.text
