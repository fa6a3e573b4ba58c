"""The committed generated modules are exactly what scripts/gen_proto.sh writes now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "proto" / "linewatch" / "v1"


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "linewatch" / "v1").iterdir()}
    committed = {
        p.name: p.read_bytes()
        for p in GENERATED.iterdir()
        if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    }
    assert sorted(fresh) == sorted(committed), "a .proto was added or removed"
    stale = [name for name in sorted(fresh) if fresh[name] != committed[name]]
    assert not stale, f"stale generated modules {stale}; run scripts/gen_proto.sh and commit"
