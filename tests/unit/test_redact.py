"""A URL's password is never shown."""

from __future__ import annotations

import pytest

from cloud.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:s3cret@mlflow:5000/x", "http://alice:***@mlflow:5000/x"),
        ("postgresql://u:p@db/linewatch", "postgresql://u:***@db/linewatch"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("sqlite:///var/mlflow/mlflow.db", "sqlite:///var/mlflow/mlflow.db"),
        ("not a url", "not a url"),
    ],
)
def test_passwords_are_hidden(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
