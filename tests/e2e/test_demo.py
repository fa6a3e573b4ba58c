"""``linewatch demo`` runs the whole system, closes the retrain loop, and leaves nothing behind.

One run covers both halves, to keep the suite's time down: version 1 trained,
rolled out and watched; then the simulated reviewer, ``linewatch retrain
--promote``, version 2 on both nodes and the before/after table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _table_row(output: str, when: str) -> list[str]:
    numbers = r"\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)$"
    found = re.search(rf"^\s+{when}\s+(metal:\d+){numbers}", output, re.MULTILINE)
    assert found, f"no {when!r} row in:\n{output[-3000:]}"
    return list(found.groups())


def test_demo_deploys_collects_retrains_and_rolls_out_version_2(tmp_path: Path) -> None:
    linewatch = Path(sys.executable).with_name("linewatch")
    seconds = ["--duration", "8", "--after", "6"]  # short watches: the loop, not the view
    completed = subprocess.run(
        [str(linewatch), "demo", "--workdir", str(tmp_path / "demo"), *seconds],
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
    # The loop: reviews from the line's truth, a promoted version 2 on every node, the table.
    assert re.search(r"simulated reviewer .* labelled [1-9]\d* samples normal", output)
    assert "metal@production is now version 2" in output, output[-4000:]
    assert "every node runs metal:2" in output
    assert re.search(r"cam-07 \[metal:2\] frames \d+", output)
    before, after = _table_row(output, "before"), _table_row(output, "after")
    assert before[0] == "metal:1" and after[0] == "metal:2"
    assert int(before[2]) > 0 and int(after[2]) > 0  # distinct line frames each version judged
    assert float(after[4]) < float(before[4])  # false alarms per 1000 frames fell
    assert float(after[7]) <= float(before[7])  # misses per 1000 frames did not rise
    assert "mlflow ui --backend-store-uri" in output
    # Every child was stopped: no process still holds the demo's log files open.
    logs = sorted((tmp_path / "demo" / "logs").glob("*.log"))
    assert [log.stem for log in logs] == ["cam-07", "cam-08", "collector", "deployer", "mosquitto"]
    lsof = subprocess.run(["fuser", *map(str, logs)], capture_output=True, text=True, check=False)
    assert lsof.stdout.strip() == "", f"still running: {lsof.stdout}"
    assert list(tmp_path.iterdir()) == [tmp_path / "demo"]  # nothing written to the cwd
