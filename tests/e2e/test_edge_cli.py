"""``linewatch-edge`` as a user runs it: serve until SIGTERM, bench, clear errors."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc

from edge.runtime.bundle import ModelBundle
from tests.plugins.edge import ABNORMAL_GREY, NORMAL_GREY, encode_png, grey_image, wait_until

pytestmark = pytest.mark.e2e

EDGE = str(Path(sys.executable).parent / "linewatch-edge")
_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")},
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE, *args], capture_output=True, text=True, timeout=120, env=_ENV, cwd=cwd
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "serve" in result.stdout and "bench" in result.stdout


def test_missing_bundle_is_one_error_line(tmp_path: Path) -> None:
    result = _run(
        "serve",
        "--bundle",
        str(tmp_path / "nope"),
        "--grpc",
        "127.0.0.1:0",
        "--record-dir",
        str(tmp_path / "record"),
        "--insecure",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: bundle ")
    assert "no such directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_one_error_line(tmp_path: Path) -> None:
    result = _run("serve", "--grpc", "nonsense", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: setting 'grpc'")
    assert "Traceback" not in result.stderr


def test_serve_without_certificates_or_insecure_is_one_error_line(tmp_path: Path) -> None:
    result = _run("serve", "--grpc", "127.0.0.1:0", "--node", "cam-07", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: grpc: node 'cam-07' has no TLS certificate; pass --tls-cert")
    assert "`linewatch certs issue --node cam-07`" in line and "--insecure" in line
    assert result.stdout == ""  # nothing was served, not even for a moment
    assert list(tmp_path.iterdir()) == []


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("serve", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2
    assert "Usage:" in result.stderr


def test_bench_prints_latency_and_throughput(tiny_bundle: ModelBundle, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good.png"), grey_image(NORMAL_GREY, size=100))
    cv2.imwrite(str(images / "bad.png"), grey_image(ABNORMAL_GREY, size=100))
    result = _run(
        "bench",
        "--bundle",
        str(tiny_bundle.directory),
        "--images",
        str(images),
        "--repeats",
        "3",
        "--seconds",
        "0.2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "CPUExecutionProvider" in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert lines["bad.png"].endswith("abnormal") and lines["good.png"].endswith("normal")
    assert "throughput batch 8:" in result.stdout


def test_serve_inspects_the_camera_answers_grpc_and_stops_on_sigterm(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    images = tmp_path / "camera"
    images.mkdir()
    for i, level in enumerate([NORMAL_GREY, ABNORMAL_GREY, NORMAL_GREY]):
        cv2.imwrite(str(images / f"{i}.png"), grey_image(level))
    config = tmp_path / "node.toml"
    config.write_text(f'site = "plant1"\nline = "line3"\nrecord_dir = "{tmp_path / "record"}"\n')
    process = subprocess.Popen(
        [
            EDGE,
            "serve",
            "--bundle",
            str(tiny_bundle.directory),
            "--camera",
            str(images),
            "--grpc",
            "127.0.0.1:0",
            "--node",
            "cam-07",
            "--config",
            str(config),
            "--insecure",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def read_lines() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=60)
        assert first.startswith("serving grpc on 127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_until(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.SERVING
                ),
                timeout_s=60,
                what="node SERVING",
            )
            stub = inspection_pb2_grpc.InspectionServiceStub(channel)
            request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
            assert stub.Inspect(request, timeout=10).verdict == common_pb2.VERDICT_ABNORMAL
        frames = tmp_path / "record" / "frames"
        wait_until(lambda: len(list(frames.glob("*-map.png"))) >= 2, what="flagged frames")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        process.stdout.close()
        assert process.stderr is not None
        errors = process.stderr.read()
        process.stderr.close()
    assert "Traceback" not in errors
    assert "WARNING" in errors and "PLAINTEXT" in errors  # --insecure is never silent
    remaining = []
    while not lines.empty():
        remaining.append(lines.get())
    assert remaining[-1].strip() == "stopped"
