"""The JSON API as scripts use it: login, sessions, CSRF, roles, reviews and their trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.db.models import Role
from cloud.web.app import SESSION_COOKIE
from tests.web_data import WebData, login, web_client

pytestmark = pytest.mark.integration


@pytest.fixture
def data(tmp_path: Path) -> Iterator[WebData]:
    made = WebData.create(tmp_path / "data")
    made.add_user("alice", Role.EXPERT)
    made.add_user("oscar", Role.OPERATOR)
    made.add_user("ada", Role.ADMIN)
    yield made
    made.close()


@pytest.fixture
def client(data: WebData, tmp_path: Path) -> Iterator[TestClient]:
    with web_client(data, tmp_path) as made:
        yield made


def test_login_sets_a_safe_cookie_and_returns_the_csrf_token(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/login", json={"username": "alice", "password": "correct horse battery"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["username"] == "alice" and body["role"] == "expert" and body["csrf_token"]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "max-age=" in cookie.lower()
    assert "; secure" in cookie.lower()  # HTTPS by default: the cookie never travels in clear
    assert client.get("/api/v1/me").json() == {"username": "alice", "role": "expert"}


def test_wrong_user_and_wrong_password_fail_alike(client: TestClient) -> None:
    wrong_password = client.post(
        "/api/v1/login", json={"username": "alice", "password": "nope-nope"}
    )
    wrong_user = client.post("/api/v1/login", json={"username": "mallory", "password": "nope-nope"})
    assert wrong_password.status_code == wrong_user.status_code == 401
    assert wrong_password.json() == wrong_user.json() == {"detail": "wrong user name or password"}
    assert "set-cookie" not in wrong_password.headers


def test_every_api_call_needs_a_session(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    for path in (
        "/api/v1/samples?reviewed=false",
        "/api/v1/alerts",
        "/api/v1/nodes",
        "/api/v1/me",
        f"/api/v1/samples/{sample_id}",
        f"/api/v1/samples/{sample_id}/image/frame",
        "/api/v1/review-queue",
        "/api/v1/users",
        "/api/openapi.json",
    ):
        answer = client.get(path)
        assert answer.status_code == 401, path
    review = client.post(f"/api/v1/samples/{sample_id}/review", json={"label": "normal"})
    assert review.status_code == 401


def test_a_tampered_or_expired_cookie_is_no_session(client: TestClient) -> None:
    login(client, "alice")
    value = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    tampered = value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    assert (
        client.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={tampered}"}).status_code
        == 401
    )
    assert (
        client.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={value}"}).status_code == 200
    )


def test_an_expired_session_is_no_session(data: WebData, tmp_path: Path) -> None:
    from itsdangerous import TimestampSigner

    with web_client(data, tmp_path) as client:
        login(client, "alice")
        value = client.cookies[SESSION_COOKIE]
        secret = (tmp_path / "var" / "web-secret").read_text().strip()
        payload = TimestampSigner(secret).unsign(value)
        old = TimestampSigner(secret)
        old.get_timestamp = lambda: 1_000_000_000  # type: ignore[method-assign]  (signed in 2001)
        expired = old.sign(payload).decode()
        client.cookies.clear()
        answer = client.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={expired}"})
        assert answer.status_code == 401


def test_disabling_a_user_ends_their_session(client: TestClient, data: WebData) -> None:
    login(client, "alice")
    with data.sessions.begin() as session:
        from cloud.accounts import set_disabled

        set_disabled(session, "alice")
    assert client.get("/api/v1/me").status_code == 401
    relogin = client.post(
        "/api/v1/login", json={"username": "alice", "password": "correct horse battery"}
    )
    assert relogin.status_code == 401


def test_review_needs_the_csrf_token(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    token = login(client, "alice")
    missing = client.post(f"/api/v1/samples/{sample_id}/review", json={"label": "normal"})
    assert missing.status_code == 403
    assert "CSRF" in missing.json()["detail"]
    wrong = client.post(
        f"/api/v1/samples/{sample_id}/review",
        json={"label": "normal"},
        headers={"X-CSRF-Token": token + "x"},
    )
    assert wrong.status_code == 403
    assert client.get("/api/v1/samples?reviewed=false").json()[0]["id"] == sample_id


def test_review_is_recorded_and_a_correction_is_a_new_row(
    client: TestClient, data: WebData
) -> None:
    first_id = data.add_sample(verdict="uncertain")
    second_id = data.add_sample(verdict="abnormal")
    token = login(client, "alice")
    headers = {"X-CSRF-Token": token}

    pending = client.get("/api/v1/samples?reviewed=false").json()
    assert {row["id"] for row in pending} == {first_id, second_id}

    answer = client.post(
        f"/api/v1/samples/{first_id}/review", json={"label": "normal"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["reviewer"] == "alice"
    corrected = client.post(
        f"/api/v1/samples/{first_id}/review",
        json={"label": "defect", "defect_type": "crack", "note": "hairline"},
        headers=headers,
    )
    assert corrected.status_code == 200

    assert [row["id"] for row in client.get("/api/v1/samples?reviewed=false").json()] == [second_id]
    detail = client.get(f"/api/v1/samples/{first_id}").json()
    assert detail["review"] == "defect"
    assert [(r["label"], r["defect_type"], r["note"]) for r in detail["reviews"]] == [
        ("normal", None, ""),
        ("defect", "crack", "hairline"),
    ]
    queue = client.get("/api/v1/review-queue").json()
    assert queue["size"] == 1 and queue["reviewed_today"] == 2 and queue["next"] == [second_id]


def test_unknown_sample_is_404_and_bad_review_is_422(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    headers = {"X-CSRF-Token": login(client, "alice")}
    assert client.get("/api/v1/samples/nope").status_code == 404
    missing = client.post("/api/v1/samples/nope/review", json={"label": "normal"}, headers=headers)
    assert missing.status_code == 404
    assert "no such sample" in missing.json()["detail"]
    assert client.get("/api/v1/samples/nope/image/frame").status_code == 404
    assert client.get("/api/v1/samples/nope/similar").status_code == 404
    bad_label = client.post(
        f"/api/v1/samples/{sample_id}/review", json={"label": "maybe"}, headers=headers
    )
    assert bad_label.status_code == 422
    normal_with_type = client.post(
        f"/api/v1/samples/{sample_id}/review",
        json={"label": "normal", "defect_type": "crack"},
        headers=headers,
    )
    assert normal_with_type.status_code == 422
    assert "label normal" in normal_with_type.json()["detail"]


def test_roles(client: TestClient, data: WebData) -> None:
    sample_id = data.add_sample()
    data.add_alert(sample_id=sample_id)
    token = login(client, "oscar")
    assert client.get("/api/v1/alerts").status_code == 200
    assert client.get("/api/v1/nodes").status_code == 200
    assert client.get(f"/api/v1/samples/{sample_id}/image/frame").status_code == 200
    assert client.get("/api/v1/samples?reviewed=false").status_code == 403
    review = client.post(
        f"/api/v1/samples/{sample_id}/review",
        json={"label": "normal"},
        headers={"X-CSRF-Token": token},
    )
    assert review.status_code == 403
    assert client.get("/api/v1/users").status_code == 403

    login(client, "alice")
    assert client.get("/api/v1/samples?reviewed=false").status_code == 200
    assert client.get("/api/v1/users").status_code == 403

    admin_token = login(client, "ada")
    added = client.post(
        "/api/v1/users",
        json={"username": "bea", "password": "long-enough", "role": "operator"},
        headers={"X-CSRF-Token": admin_token},
    )
    assert added.status_code == 201
    assert {u["username"] for u in client.get("/api/v1/users").json()} == {
        "ada",
        "alice",
        "bea",
        "oscar",
    }
    assert "password_hash" not in client.get("/api/v1/users").text


def test_huge_page_and_sql_looking_filters(client: TestClient, data: WebData) -> None:
    data.add_alert()
    login(client, "alice")
    assert client.get("/api/v1/alerts?page=1000000").json() == []
    assert client.get("/api/v1/alerts?page=99999999999999999999999").status_code == 422
    assert client.get("/api/v1/samples?page=1000000").json() == []
    for text in ("' OR '1'='1", "cam3; DROP TABLE alerts; --", "%", "_"):
        answer = client.get("/api/v1/alerts", params={"node": text, "site": text})
        assert answer.status_code == 200
        assert answer.json() == []
    assert len(client.get("/api/v1/alerts").json()) == 1  # the table is still there


def test_logout_ends_the_session(client: TestClient) -> None:
    token = login(client, "alice")
    assert client.post("/api/v1/logout").status_code == 403  # CSRF first
    assert client.post("/api/v1/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/v1/me").status_code == 401
