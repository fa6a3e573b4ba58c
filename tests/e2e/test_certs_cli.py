"""``linewatch certs`` as a user runs it: the console script, its output and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

pytestmark = pytest.mark.e2e

LINEWATCH = Path(sys.executable).parent / "linewatch"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINEWATCH.is_file():
        pytest.skip(f"console script {LINEWATCH} is not installed (pip install -e .)")
    return subprocess.run(
        [str(LINEWATCH), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_init_issue_revoke(tmp_path: Path) -> None:
    assert _run("certs", "init", cwd=tmp_path).returncode == 0
    pki = tmp_path / "keys" / "pki"
    issued = _run("certs", "issue", "--node", "cam-07", "--host", "10.0.0.7", cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr
    certificate = x509.load_pem_x509_certificate((pki / "node-cam-07.pem").read_bytes())
    hosts = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "cam-07" in hosts.get_values_for_type(x509.DNSName)
    assert _run("certs", "issue", "--deployer", cwd=tmp_path).returncode == 0

    revoked = _run("certs", "revoke", str(pki / "deployer-deployer.pem"), cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "crl.pem" in revoked.stdout
    assert len(x509.load_pem_x509_crl((pki / "crl.pem").read_bytes())) == 1


def test_mistakes_end_in_one_line(tmp_path: Path) -> None:
    no_ca = _run("certs", "issue", "--node", "cam-07", cwd=tmp_path)
    assert no_ca.returncode == 1
    assert no_ca.stderr.startswith("error: no plant CA") and "certs init" in no_ca.stderr
    assert "Traceback" not in no_ca.stderr
    _run("certs", "init", cwd=tmp_path)
    again = _run("certs", "init", cwd=tmp_path)
    assert again.returncode == 1 and "already holds a CA" in again.stderr
    both = _run("certs", "issue", "--node", "a", "--client", "b", cwd=tmp_path)
    assert both.returncode == 2 and "exactly one" in both.stderr
