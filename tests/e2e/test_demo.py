"""``linewatch demo`` runs the whole system and leaves nothing running behind it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_trains_deploys_to_both_nodes_and_collects(tmp_path: Path) -> None:
    linewatch = Path(sys.executable).with_name("linewatch")
    completed = subprocess.run(
        [str(linewatch), "demo", "--workdir", str(tmp_path / "demo"), "--duration", "8"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert re.search(r"cam-07\s+succeeded", output)
    assert re.search(r"cam-08\s+succeeded", output)
    collected = [int(n) for n in re.findall(r"collected: (\d+) alerts", output)]
    assert collected and collected[-1] > 0, output[-2000:]
    assert "mlflow ui --backend-store-uri" in output
    # Every child was stopped: no process still holds the demo's log files open.
    logs = sorted((tmp_path / "demo" / "logs").glob("*.log"))
    assert [log.stem for log in logs] == ["cam-07", "cam-08", "collector", "mosquitto"]
    lsof = subprocess.run(["fuser", *map(str, logs)], capture_output=True, text=True, check=False)
    assert lsof.stdout.strip() == "", f"still running: {lsof.stdout}"
    assert list(tmp_path.iterdir()) == [tmp_path / "demo"]  # nothing written to the cwd
