"""``linewatch calibrate`` as a user runs it: CliRunner on the app, then the console script.

The tiny bundle scores |grey - 128| / 32 and ships threshold 2.0; the MVTec folder
of ``make_mvtec_folder`` has 3 white defects (3.97), 2 faint ones (1.625, missed at
2.0) and 6 good test images, one with a speck at 2.25 (a false alarm at 2.0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

import cloud.cli.commands.calibrate  # noqa: F401  registers the command on the app
from cloud.bundle_writer import update_manifest
from cloud.calibration import SCORE_MARGIN
from cloud.cli.app import app
from cloud.errors import BundleCorrupt, BundleSignatureError, DatasetError, LinewatchError
from cloud.signing import KeyPair, generate_key_pair
from edge.runtime.bundle import MANIFEST_FILE, MODEL_FILE, ModelBundle, load_bundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.imaging import read_image
from edge.runtime.policy import Verdict
from edge.runtime.signing import load_public_key, verify_manifest
from tests.integration.test_evaluate import make_mvtec_folder
from tests.tiny_bundle import make_tiny_bundle

pytestmark = pytest.mark.e2e

LINEWATCH = Path(sys.executable).parent / "linewatch"
FAINT = 52 / 32  # the faint defects' score: missed at the tiny bundle's 2.0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_mvtec_folder(tmp_path / "category")


@pytest.fixture
def signed_bundle(tmp_path: Path, signing_key: Ed25519PrivateKey) -> ModelBundle:
    return update_manifest(make_tiny_bundle(tmp_path / "bundle"), signing_key=signing_key)


@pytest.fixture(autouse=True)
def _no_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # keys/signing.key is the default; run where none is, so each test names its key.
    monkeypatch.chdir(tmp_path)


def _calibrate(bundle: Path, data: Path, out: Path, *extra: str) -> Result:
    args = ["calibrate", "--bundle", str(bundle), "--data", str(data), "--out", str(out)]
    return CliRunner().invoke(app, [*args, *extra])


def _manifest(bundle: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((bundle / MANIFEST_FILE).read_text())
    return loaded


def test_calibrate_lowers_the_threshold_to_catch_the_defects_and_signs_again(
    signed_bundle: ModelBundle, data: Path, tmp_path: Path, signing_pair: KeyPair
) -> None:
    source_manifest = (signed_bundle.directory / MANIFEST_FILE).read_text()
    out = tmp_path / "calibrated"

    result = _calibrate(
        signed_bundle.directory,
        data,
        out,
        *("--recall", "0.95", "--signing-key", str(signing_pair.private_key)),
    )

    assert result.exit_code == 0, result.output
    calibrated = load_bundle(out)
    decision = calibrated.manifest.decision
    assert decision.threshold == pytest.approx(FAINT - SCORE_MARGIN)
    assert decision.uncertain_low == pytest.approx(FAINT - SCORE_MARGIN - 0.5)
    assert "lowered to 1.624 to catch 100% of 5 labelled defects" in decision.method
    assert decision.method.startswith("fixed for tests; ")
    record = decision.recall_calibration
    assert record is not None
    assert (record.target_recall, record.recall, record.n_defects) == (0.95, 1.0, 5)
    assert record.limited_by == "recall"
    assert record.n_good == 6
    assert record.false_alarm_rate == pytest.approx(1 / 6)  # the speck, as before
    assert record.good_quantile_threshold == 2.0
    assert record.data_root == str(data.resolve())
    assert record.data_digest is not None and len(record.data_digest) == 64
    # The re-made signature verifies, and the node's engine runs the copy.
    verify_manifest(calibrated.manifest, load_public_key(signing_pair.public_key))
    engine = InferenceEngine(calibrated)
    faint = read_image(data / "test" / "faint" / "000.png")
    score = float(engine.infer_images([faint]).image_scores[0])
    assert decision.decide(score) is Verdict.ABNORMAL
    # The source bundle is untouched, the table says what changed.
    assert (signed_bundle.directory / MANIFEST_FILE).read_text() == source_manifest
    lines = result.stdout.splitlines()
    assert lines[-5].split() == ["threshold", "2.000", "1.624"]
    assert lines[-4].split()[:3] == ["recall", "0.600", "1.000"]
    assert lines[-3].split()[:4] == ["false", "alarms", "0.167", "0.167"]
    assert "set by the defects" in lines[-2]
    assert "signed with key" in lines[-1]


def test_a_met_target_keeps_the_good_quantile_threshold(
    signed_bundle: ModelBundle, data: Path, tmp_path: Path, signing_pair: KeyPair
) -> None:
    out = tmp_path / "calibrated"

    result = _calibrate(
        signed_bundle.directory,
        data,
        out,
        *("--recall", "0.6", "--signing-key", str(signing_pair.private_key)),
    )

    assert result.exit_code == 0, result.output
    decision = load_bundle(out).manifest.decision
    assert decision.threshold == 2.0
    assert "already catches 60% of labelled defects" in decision.method
    assert decision.recall_calibration is not None
    assert decision.recall_calibration.limited_by == "good-quantile"
    assert "good-image quantile" in result.stdout


def test_calibrating_again_in_place_starts_from_the_good_quantile(
    tiny_bundle: ModelBundle, data: Path
) -> None:
    bundle = tiny_bundle.directory
    first = _calibrate(bundle, data, bundle, "--recall", "1", "--allow-unsigned")
    assert first.exit_code == 0, first.output
    assert load_bundle(bundle).manifest.decision.threshold < 2.0

    # A lower target rises back to the trainer's threshold, never above it.
    again = _calibrate(bundle, data, bundle, "--recall", "0.5", "--allow-unsigned")

    assert again.exit_code == 0, again.output
    manifest = load_bundle(bundle).manifest
    assert manifest.decision.threshold == 2.0
    assert manifest.decision.method.count("already catches") == 1
    assert manifest.signature is None
    assert "UNSIGNED" in again.stdout


def test_a_corrupt_defect_image_is_named_and_skipped(
    tiny_bundle: ModelBundle, data: Path, tmp_path: Path
) -> None:
    broken = data / "test" / "white" / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "calibrated"

    result = _calibrate(tiny_bundle.directory, data, out, "--recall", "1", "--allow-unsigned")

    assert result.exit_code == 0, result.output
    assert f"skipped image {broken}" in result.stderr
    record = load_bundle(out).manifest.decision.recall_calibration
    assert record is not None and record.n_defects == 5


def test_a_dataset_without_defects_is_refused(
    tiny_bundle: ModelBundle, data: Path, tmp_path: Path
) -> None:
    for folder in ("white", "faint"):
        shutil.rmtree(data / "test" / folder)
    out = tmp_path / "calibrated"

    result = _calibrate(tiny_bundle.directory, data, out, "--recall", "0.95", "--allow-unsigned")

    assert result.exit_code == 1
    assert isinstance(result.exception, DatasetError)
    message = str(result.exception)
    assert "calibration needs labelled defects" in message
    assert "good-image quantile" in message
    assert not out.exists()


@pytest.mark.parametrize("recall", ["0", "1.5", "-0.2"])
def test_a_recall_outside_zero_one_is_refused(
    tiny_bundle: ModelBundle, data: Path, tmp_path: Path, recall: str
) -> None:
    result = _calibrate(tiny_bundle.directory, data, tmp_path / "out", "--recall", recall)

    assert result.exit_code == 1
    assert isinstance(result.exception, LinewatchError)
    assert f"recall {float(recall)}: give a share of defects to catch in (0, 1]" in str(
        result.exception
    )


def test_an_unsigned_bundle_needs_allow_unsigned(
    tiny_bundle: ModelBundle, data: Path, tmp_path: Path
) -> None:
    result = _calibrate(tiny_bundle.directory, data, tmp_path / "out", "--recall", "0.95")

    assert isinstance(result.exception, BundleSignatureError)
    assert "unsigned" in str(result.exception)
    assert "--allow-unsigned" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_a_manifest_altered_after_signing_is_refused(
    signed_bundle: ModelBundle, data: Path, tmp_path: Path, signing_pair: KeyPair
) -> None:
    path = signed_bundle.directory / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["decision"]["threshold"] = 9.0
    path.write_text(json.dumps(manifest))

    result = _calibrate(
        signed_bundle.directory,
        data,
        tmp_path / "out",
        *("--recall", "0.95", "--signing-key", str(signing_pair.private_key)),
    )

    assert isinstance(result.exception, BundleSignatureError)
    assert "signature does not match" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_a_signed_bundle_needs_its_key(
    signed_bundle: ModelBundle, data: Path, tmp_path: Path
) -> None:
    other = generate_key_pair(tmp_path / "other").private_key

    no_key = _calibrate(signed_bundle.directory, data, tmp_path / "out", "--recall", "0.95")
    wrong_key = _calibrate(
        signed_bundle.directory,
        data,
        tmp_path / "out",
        *("--recall", "0.95", "--signing-key", str(other)),
    )

    assert isinstance(no_key.exception, BundleSignatureError)
    assert "give that key as --signing-key" in str(no_key.exception)
    assert isinstance(wrong_key.exception, BundleSignatureError)
    assert "give the key that signed it" in str(wrong_key.exception)


def test_a_changed_model_file_is_refused(
    tiny_bundle: ModelBundle, data: Path, tmp_path: Path
) -> None:
    with (tiny_bundle.directory / MODEL_FILE).open("ab") as handle:
        handle.write(np.zeros(4, dtype=np.uint8).tobytes())

    result = _calibrate(
        tiny_bundle.directory, data, tmp_path / "out", "--recall", "0.95", "--allow-unsigned"
    )

    assert isinstance(result.exception, BundleCorrupt)
    assert "sha256" in str(result.exception)


def _console(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINEWATCH.is_file():
        pytest.skip(f"console script {LINEWATCH} is not installed (pip install -e .)")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    return subprocess.run(
        [str(LINEWATCH), *args],
        cwd=cwd,
        env=environment | {"OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_console_script_prints_one_error_line_for_a_folder_without_defects(
    tiny_bundle: ModelBundle, tmp_path: Path
) -> None:
    data = make_mvtec_folder(tmp_path / "category")
    for folder in ("white", "faint"):
        shutil.rmtree(data / "test" / folder)
    args = ["--bundle", str(tiny_bundle.directory), "--data", str(data), "--recall", "0.95"]

    result = _console(
        "calibrate", *args, "--out", str(tmp_path / "out"), "--allow-unsigned", cwd=tmp_path
    )

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith("error: dataset ")
    assert "calibration needs labelled defects" in errors[0]
    assert "Traceback" not in result.stderr
