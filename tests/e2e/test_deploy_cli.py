"""``linewatch keys / register / promote / deploy / nodes / rollback`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.deploy.pusher import NodeClient
from edge.runtime.bundle import ModelBundle
from tests.plugins.deploy import start_node_process
from tests.plugins.mqtt import wait_for

pytestmark = pytest.mark.e2e

LINEWATCH = Path(sys.executable).parent / "linewatch"


def _environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment = {k: v for k, v in environment.items() if not k.startswith("LINEWATCH_")}
    environment["OMP_NUM_THREADS"] = "1"
    return environment


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINEWATCH), *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _heard_from(db_url: str, address: str, *, line: str = "line", node: str = "node") -> None:
    """Record a node as its first heartbeat would: a signed release must name its line."""
    from cloud.db.migrate import upgrade
    from cloud.db.models import Node
    from cloud.db.session import make_engine, make_session_factory

    upgrade(db_url)
    with make_session_factory(make_engine(db_url))() as session:
        session.add(Node(site="site", line=line, node=node, grpc_address=address, online=True))
        session.commit()


def test_keys_register_promote_deploy_status_rollback(
    tmp_path: Path, bundle_maker: Callable[..., ModelBundle]
) -> None:
    cwd = tmp_path / "cloud"
    cwd.mkdir()
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    db = ["--db", db_url]

    keys = _ok(_run(["keys", "init", "--out", "keys/"], cwd))
    assert "key id" in keys
    assert stat.S_IMODE((cwd / "keys" / "signing.key").stat().st_mode) == 0o600
    again = _run(["keys", "init", "--out", "keys/"], cwd)
    assert again.returncode == 1 and again.stderr.startswith("error: keys: ")

    for version in ("1", "2"):  # unsigned bundles: the registry signs them with keys/signing.key
        bundle = bundle_maker(key=None, version=version)
        registered = _ok(
            _run(["register", "--bundle", str(bundle.directory), "--name", "line3"], cwd)
        )
        assert f"version {version}, signed with keys/signing.key" in registered
    _ok(_run(["promote", "--name", "line3", "--version", "1"], cwd))

    # TLS by default: without the deployer's certificate nothing is dialled.
    refused = _run(["deploy", "--name", "line3", "--nodes", "127.0.0.1:1", *db], cwd)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: deployer TLS: keys/pki/deployer-deployer.pem")
    assert "`linewatch certs issue --deployer`" in line and "--insecure" in line
    _ok(_run(["certs", "init"], cwd))
    _ok(_run(["certs", "issue", "--deployer"], cwd))
    _ok(_run(["certs", "issue", "--node", "cam-07"], cwd))
    pki = cwd / "keys" / "pki"
    node_tls = ("--tls-cert", str(pki / "node-cam-07.pem"), "--tls-key")
    node_tls += (str(pki / "node-cam-07.key"), "--tls-ca", str(pki / "ca.pem"))
    node_tls += ("--tls-crl", str(pki / "crl.pem"))

    node = start_node_process(
        tmp_path / "models", cwd / "keys" / "signing.pub", tmp_path / "rec", security=node_tls
    )
    try:
        _heard_from(db_url, node.address)
        deployed = _ok(_run(["deploy", "--name", "line3", "--nodes", node.address, *db], cwd))
        assert "deploying line3:1" in deployed and "succeeded" in deployed

        status = json.loads(_ok(_run(["deploy", "status", "--json", *db], cwd)))
        assert (status["model_version"], status["state"]) == ("1", "succeeded")
        [target] = status["targets"]
        assert target["address"] == node.address and target["state"] == "succeeded"
        assert target["bytes_sent"] == target["bytes_total"] > 0

        _ok(
            _run(["deploy", "--name", "line3", "--version", "2", "--nodes", node.address, *db], cwd)
        )
        nodes = json.loads(_ok(_run(["nodes", "list", "--json", *db], cwd)))
        assert [(n["grpc_address"], n["model_version"]) for n in nodes] == [(node.address, "2")]

        rolled = _ok(_run(["rollback", "--node", node.address, *db], cwd))
        assert "rolled back to line3:1" in rolled
        record = json.loads(_ok(_run(["deploy", "status", "--json", *db], cwd)))
        assert (record["kind"], record["state"], record["model_name"]) == (
            "rollback",
            "succeeded",
            "",
        )
        (target,) = record["targets"]
        assert target["state"] == "succeeded"
        assert target["outcome"] == "rolled back to line3:1 (was line3:2)"
        nodes = json.loads(_ok(_run(["nodes", "list", "--json", *db], cwd)))
        assert [n["model_version"] for n in nodes] == ["1"]
        status = _ok(_run(["deploy", "status", *db], cwd))
        assert f"deployment {record['id']}: rollback succeeded" in status

        missing = _run(
            ["deploy", "--name", "line3", "--version", "9", "--nodes", node.address, *db], cwd
        )
        assert missing.returncode == 1
        assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
        assert "no version 9" in missing.stderr
    finally:
        node.stop()
    assert (cwd / "keys").is_dir() and sorted(p.name for p in cwd.iterdir()) == ["keys", "var"]


def test_unreachable_node_fails_the_deploy_with_one_line(
    tmp_path: Path, bundle_maker: Callable[..., ModelBundle]
) -> None:
    cwd = tmp_path / "cloud"
    cwd.mkdir()
    _ok(_run(["keys", "init"], cwd))
    _ok(_run(["register", "--bundle", str(bundle_maker(key=None).directory), "--name", "l1"], cwd))
    _ok(_run(["promote", "--name", "l1", "--version", "1"], cwd))

    db = ["--db", f"sqlite:///{tmp_path}/d.db"]
    _heard_from(f"sqlite:///{tmp_path}/d.db", "127.0.0.1:1")
    result = _run(["deploy", "--name", "l1", "--nodes", "127.0.0.1:1", *db, "--insecure"], cwd)

    assert result.returncode == 1
    *warnings, last = result.stderr.strip().splitlines()
    assert last.startswith("error: deploy of l1:1: 1 of 1 nodes not updated (127.0.0.1:1)")
    assert "WARNING" in warnings[0] and "PLAINTEXT" in warnings[0]
    assert "127.0.0.1:1" in result.stdout and "failed" in result.stdout
    usage = _run(["deploy", "--nodes", "127.0.0.1:1"], cwd)
    assert usage.returncode == 2 and "--name" in usage.stderr


def test_a_rollback_that_reaches_no_node_is_recorded_as_failed(tmp_path: Path) -> None:
    cwd = tmp_path / "cloud"
    cwd.mkdir()
    db = ["--db", f"sqlite:///{tmp_path}/d.db"]

    result = _run(["rollback", "--node", "127.0.0.1:1", "--insecure", *db], cwd)

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: rollback: 1 of 1 nodes not rolled back (127.0.0.1:1)")
    record = json.loads(_ok(_run(["deploy", "status", "--json", *db], cwd)))
    assert (record["kind"], record["state"]) == ("rollback", "failed")
    assert record["targets"][0]["state"] == "failed"
    assert "127.0.0.1:1" in record["targets"][0]["outcome"]


def _active_on(address: str) -> str:
    with NodeClient(address) as client:
        return client.models().active


def test_watch_rolls_out_each_time_the_alias_moves(
    tmp_path: Path, bundle_maker: Callable[..., ModelBundle]
) -> None:
    cwd = tmp_path / "cloud"
    cwd.mkdir()
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    db = ["--db", db_url]
    _ok(_run(["keys", "init"], cwd))
    for version in ("1", "2"):
        bundle = bundle_maker(key=None, version=version)
        _ok(_run(["register", "--bundle", str(bundle.directory), "--name", "line3"], cwd))
    _ok(_run(["promote", "--name", "line3", "--version", "1"], cwd))
    node = start_node_process(tmp_path / "models", cwd / "keys" / "signing.pub", tmp_path / "rec")
    _heard_from(db_url, node.address)
    watch = ["deploy", "--name", "line3", "--nodes", node.address, "--watch", "--interval", "0.3"]
    watch.append("--insecure")  # a lab node: start_node_process serves plaintext
    watcher = subprocess.Popen(
        [str(LINEWATCH), *watch, *db],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _active_on(node.address) == "line3:1", 60, "line3:1 on the node")
        _ok(_run(["promote", "--name", "line3", "--version", "2"], cwd))
        wait_for(lambda: _active_on(node.address) == "line3:2", 60, "line3:2 after promote")
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
        node.stop()
    assert watcher.returncode == 0, err
    assert "watching line3@production" in out
    assert "line3@production is version 1" in out and "line3@production is version 2" in out
    assert out.count("deploying line3:") == 2  # once per move, not once per check
    assert out.rstrip().endswith("watch stopped")
    status = json.loads(_ok(_run(["deploy", "status", "--json", *db], cwd)))
    assert (status["model_version"], status["state"]) == ("2", "succeeded")
