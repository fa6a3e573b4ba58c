"""The web app serves HTTPS unless told ``insecure``, and its cookies follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import ConfigError
from cloud.web.settings import WebSettings, cookies_secure, tls_files


def test_https_is_required_unless_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--tls-cert and --tls-key.*--insecure"):
        tls_files(WebSettings(var_dir=tmp_path))
    assert tls_files(WebSettings(var_dir=tmp_path, insecure=True)) is None


def test_a_missing_certificate_is_named(tmp_path: Path) -> None:
    settings = WebSettings(tls_cert=tmp_path / "web.pem", tls_key=tmp_path / "web.key")
    with pytest.raises(ConfigError, match=r"web\.pem does not exist"):
        tls_files(settings)


def test_cookies_are_secure_unless_insecure() -> None:
    assert cookies_secure(WebSettings())
    assert not cookies_secure(WebSettings(insecure=True))
    assert cookies_secure(WebSettings(insecure=True, secure_cookies=True))  # behind a TLS proxy
