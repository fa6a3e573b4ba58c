"""EdgeSettings: flags over environment over file; bad values fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime.errors import ConfigError
from edge.settings import EdgeSettings, load_settings


def test_defaults_run_without_anything() -> None:
    settings = EdgeSettings()
    assert settings.grpc == "127.0.0.1:50051"
    assert settings.metrics_address is None
    assert settings.mqtt_url is None
    assert settings.record_dir.is_absolute()  # never the working directory


def test_flags_override_environment_override_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "node.toml"
    config.write_text('site = "from-file"\nline = "file-line"\nnode = "file-node"\n')
    monkeypatch.setenv("LINEWATCH_LINE", "env-line")
    monkeypatch.setenv("LINEWATCH_NODE", "env-node")
    settings = load_settings(config, node="flag-node", site=None)
    assert (settings.site, settings.line, settings.node) == ("from-file", "env-line", "flag-node")


def test_metrics_address_parses_port_only() -> None:
    assert EdgeSettings(metrics=":9100").metrics_address == ("0.0.0.0", 9100)
    assert EdgeSettings(metrics="127.0.0.1:0").metrics_address == ("127.0.0.1", 0)


def test_bad_grpc_address_is_one_readable_line() -> None:
    with pytest.raises(ConfigError, match=r"setting 'grpc'.*not host:port") as info:
        load_settings(None, grpc="nonsense")
    assert "\n" not in str(info.value)


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("cameraa = 3\n")
    with pytest.raises(ConfigError, match="cameraa"):
        load_settings(config)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings(tmp_path / "missing.toml")


def test_tls_comes_from_flags_environment_or_file_and_is_on_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.authz import tls_files

    assert not EdgeSettings().insecure
    with pytest.raises(ConfigError, match="linewatch certs issue --node cam-07"):
        tls_files(EdgeSettings(node="cam-07"))
    config = tmp_path / "node.toml"
    config.write_text('tls_cert = "/file/node.pem"\ntls_ca = "/file/ca.pem"\n')
    monkeypatch.setenv("LINEWATCH_TLS_KEY", "/env/node.key")
    monkeypatch.setenv("LINEWATCH_TLS_CA", "/env/ca.pem")
    files = tls_files(load_settings(config, tls_ca=Path("/flag/ca.pem"), insecure=None))
    assert files is not None
    assert (files.certificate, files.private_key, files.ca) == (
        Path("/file/node.pem"),
        Path("/env/node.key"),
        Path("/flag/ca.pem"),
    )
    monkeypatch.delenv("LINEWATCH_TLS_KEY")
    monkeypatch.delenv("LINEWATCH_TLS_CA")
    monkeypatch.setenv("LINEWATCH_INSECURE", "true")
    assert tls_files(load_settings(None, insecure=None)) is None  # the lab, from the environment


def test_the_deployer_needs_its_certificate_unless_insecure(tmp_path: Path) -> None:
    deploy_settings = pytest.importorskip("cloud.deploy.settings", reason="needs linewatch[cloud]")
    settings = deploy_settings.DeploySettings()
    assert settings.tls_cert == Path("keys/pki/deployer-deployer.pem")
    assert settings.tls_ca == Path("keys/pki/ca.pem")
    settings_cls = deploy_settings.DeploySettings
    missing = settings_cls(tls_cert=tmp_path / "d.pem", tls_key=tmp_path / "d.key")
    with pytest.raises(ConfigError, match=r"d\.pem, .*d\.key, .*not found.*--deployer"):
        missing.client_options()
    assert deploy_settings.DeploySettings(insecure=True).client_options().tls is None


def test_batching_comes_from_the_environment_and_bad_bounds_fail_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINEWATCH_BATCH_MAX", "4")
    monkeypatch.setenv("LINEWATCH_BATCH_WAIT_MS", "1.5")
    settings = load_settings(None)
    assert (settings.batch_max, settings.batch_wait_ms) == (4, 1.5)
    with pytest.raises(ConfigError, match=r"setting 'batch_max'") as info:
        load_settings(None, batch_max=0)
    assert "\n" not in str(info.value)
