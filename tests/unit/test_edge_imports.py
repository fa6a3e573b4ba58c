"""The edge never imports torch or MLflow (an edge box has neither)."""

from __future__ import annotations

import subprocess
import sys


def test_edge_imports_neither_torch_nor_mlflow() -> None:
    code = (
        "import sys, edge, edge.cli, edge.server, edge.node\n"
        "heavy = sorted(m for m in ('torch', 'mlflow') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == ""
