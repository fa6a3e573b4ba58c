"""`linewatch users` and `linewatch samples review`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web_data import WebData

pytestmark = pytest.mark.e2e

LINEWATCH = str(Path(sys.executable).parent / "linewatch")


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINEWATCH, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


@pytest.fixture
def data(tmp_path: Path) -> Iterator[WebData]:
    made = WebData.create(tmp_path / "data")
    yield made
    made.close()


def test_users_add_list_disable(data: WebData, tmp_path: Path) -> None:
    env = {"LINEWATCH_PASSWORD": "s3cret-enough"}
    added = _run(
        "users", "add", "alice", "--role", "expert", "--db", data.db_url, cwd=tmp_path, env=env
    )
    assert added.returncode == 0, added.stderr
    assert "added alice as expert" in added.stdout

    again = _run(
        "users", "add", "alice", "--role", "admin", "--db", data.db_url, cwd=tmp_path, env=env
    )
    assert again.returncode == 1
    assert again.stderr.startswith("error: user alice exists")

    short = _run(
        "users", "add", "bob", "--role", "operator", "--db", data.db_url,
        cwd=tmp_path, env={"LINEWATCH_PASSWORD": "short"},
    )  # fmt: skip
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr

    bad_role = _run("users", "add", "bob", "--role", "boss", "--db", data.db_url, cwd=tmp_path)
    assert bad_role.returncode == 2

    disabled = _run("users", "disable", "alice", "--db", data.db_url, cwd=tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    listed = _run("users", "list", "--json", "--db", data.db_url, cwd=tmp_path)
    assert json.loads(listed.stdout) == [
        {
            "username": "alice",
            "role": "expert",
            "disabled": True,
            "created_at": json.loads(listed.stdout)[0]["created_at"],
        }
    ]
    unknown = _run("users", "disable", "nobody", "--db", data.db_url, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no such user" in unknown.stderr


def test_users_add_prompts_for_the_password_twice(data: WebData, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "LINEWATCH_PASSWORD"}
    result = subprocess.run(
        [LINEWATCH, "users", "add", "carol", "--role", "admin", "--db", data.db_url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        env=env,
        input="long-password\nlong-password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "added carol as admin" in result.stdout


def test_review_from_the_command_line_keeps_the_trail(data: WebData, tmp_path: Path) -> None:
    sample_id = data.add_sample(verdict="uncertain")
    other_id = data.add_sample(verdict="abnormal")

    first = _run(
        "samples", "review", sample_id, "--label", "normal", "--reviewer", "alice",
        "--db", data.db_url, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = _run(
        "samples", "review", sample_id, "--label", "defect", "--defect-type", "Crack",
        "--note", "hairline at the edge", "--db", data.db_url, cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "defect (crack)" in second.stdout

    listed = json.loads(_run("samples", "list", "--json", "--db", data.db_url, cwd=tmp_path).stdout)
    reviews = {row["id"]: row["review"] for row in listed}
    assert reviews == {sample_id: "defect", other_id: None}
    with data.sessions() as session:
        from cloud.review import review_trail

        trail = review_trail(session, sample_id)
    assert [(r.label, r.defect_type, r.reviewer) for r in trail] == [
        ("normal", None, "alice"),
        ("defect", "crack", trail[1].reviewer),
    ]
    assert trail[1].reviewer.startswith("cli:")

    missing = _run(
        "samples", "review", "nope", "--label", "normal", "--db", data.db_url, cwd=tmp_path
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: sample nope: no such sample")
    bad = _run(
        "samples", "review", other_id, "--label", "normal", "--defect-type", "crack",
        "--db", data.db_url, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "label normal" in bad.stderr
