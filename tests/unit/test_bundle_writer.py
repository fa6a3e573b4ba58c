"""The one bundle writer: what it writes reloads, verifies and keeps its typed sections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundle_writer import (
    UNREGISTERED,
    BundleSections,
    update_manifest,
    write_bundle,
    write_updated_copy,
)
from cloud.errors import BundleError, TrainingError
from cloud.signing import KeyPair
from edge.runtime.bundle import (
    MANIFEST_FILE,
    DetectorInfo,
    InputSpec,
    ModelBundle,
    ScoreCalibration,
    TrainingData,
    load_bundle,
)
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.golden import check_golden
from edge.runtime.policy import DecisionPolicy
from edge.runtime.signing import BundleSignatureError, load_public_key, verify_manifest
from tests.tiny_bundle import tiny_graph

SIZE = 32
DETECTOR = DetectorInfo(
    kind="tiny-grey-distance",
    feature_blocks=(4, 10),
    memory_bank_size=12,
    memory_bank_sizes=(8, 4),
    colour_contrast_weight=32.0,
    patch_normalisation="none",
)
TRAINING_DATA = TrainingData(
    digest="ab" * 32,
    n_train_good=5,
    n_memory_bank_images=3,
    n_calibration_images=2,
    settings={"input_size": 64, "bank_sizes": [8, 4]},  # as JSON holds it
)


def _sections(**changes: object) -> BundleSections:
    base = BundleSections(
        name="line3",
        input=InputSpec(height=SIZE, width=SIZE),
        calibration=ScoreCalibration(
            method="fixed: |grey - 128| / 32", raw_location=0.0, raw_scale=1.0, n_images=2
        ),
        decision=DecisionPolicy(threshold=2.0, uncertain_low=1.5, method="fixed for tests"),
        detector=DETECTOR,
        training_data=TRAINING_DATA,
    )
    return base.model_copy(update=changes)


def _write(out: Path, key: Ed25519PrivateKey | None = None) -> ModelBundle:
    good = [np.full((SIZE, SIZE, 3), grey, dtype=np.uint8) for grey in (120, 136)]
    return write_bundle(
        out,
        _sections(),
        write_model=lambda path: onnx.save(tiny_graph(SIZE), str(path)),
        golden_images=good,
        signing_key=key,
    )


def test_written_bundle_reloads_signed_with_its_typed_sections(
    tmp_path: Path, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    written = _write(tmp_path / "bundle", signing_key)

    reloaded = load_bundle(tmp_path / "bundle")  # a fresh object, from the files alone

    assert reloaded.manifest == written.manifest
    verify_manifest(reloaded.manifest, load_public_key(signing_pair.public_key))
    assert reloaded.manifest.version == UNREGISTERED
    assert reloaded.manifest.detector == DETECTOR
    assert reloaded.manifest.detector.memory_bank_sizes == (8, 4)
    assert reloaded.manifest.training_data == TRAINING_DATA
    assert reloaded.manifest.training_data.dataset_digest == "ab" * 32
    assert sorted(reloaded.manifest.files) == sorted(item.file for item in reloaded.manifest.golden)
    assert len(reloaded.manifest.golden) == 3  # two good images and a painted defect
    engine = InferenceEngine(
        reloaded, EngineOptions(providers=("CPUExecutionProvider",), intra_op_threads=1)
    )
    assert check_golden(engine, reloaded).passed  # the golden scores are the written graph's


def test_manifest_json_holds_only_the_keys_given(tmp_path: Path) -> None:
    _write(tmp_path / "bundle")

    raw = json.loads((tmp_path / "bundle" / MANIFEST_FILE).read_text())

    assert raw["detector"] == {
        "kind": "tiny-grey-distance",
        "feature_blocks": [4, 10],
        "memory_bank_size": 12,
        "memory_bank_sizes": [8, 4],
        "colour_contrast_weight": 32.0,
        "patch_normalisation": "none",
    }
    assert raw["training_data"]["settings"] == {"input_size": 64, "bank_sizes": [8, 4]}
    assert "mlflow_run_id" not in raw["training_data"]
    assert raw["signature"] is None


def test_update_signs_last_and_a_stale_signature_is_dropped(
    tmp_path: Path, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    bundle = _write(tmp_path / "bundle", signing_key)
    public_key = load_public_key(signing_pair.public_key)
    stamped_data = TRAINING_DATA.model_copy(update={"mlflow_run_id": "run-1"})

    unsigned = update_manifest(bundle, metrics={"image_auroc": 0.97})
    signed = update_manifest(
        unsigned, name="line4", version="2", training_data=stamped_data, signing_key=signing_key
    )

    assert unsigned.manifest.signature is None
    with pytest.raises(BundleSignatureError, match="unsigned"):
        verify_manifest(unsigned.manifest, public_key)
    reloaded = load_bundle(tmp_path / "bundle")
    verify_manifest(reloaded.manifest, public_key)
    assert reloaded.manifest == signed.manifest
    assert reloaded.label == "line4:2"
    assert reloaded.manifest.metrics == {"image_auroc": 0.97}
    assert reloaded.manifest.training_data.mlflow_run_id == "run-1"
    assert reloaded.manifest.detector == DETECTOR


def test_update_refuses_an_invalid_value_and_writes_nothing(tmp_path: Path) -> None:
    bundle = _write(tmp_path / "bundle")
    before = (tmp_path / "bundle" / MANIFEST_FILE).read_text()

    with pytest.raises(BundleError, match=r"cannot set name to ''"):
        update_manifest(bundle, name="")
    assert (tmp_path / "bundle" / MANIFEST_FILE).read_text() == before


def test_rewrite_replaces_a_bundle_and_refuses_an_unrelated_folder(tmp_path: Path) -> None:
    first = _write(tmp_path / "bundle")
    second = _write(tmp_path / "bundle")
    assert load_bundle(tmp_path / "bundle").manifest == second.manifest
    assert second.manifest.created_at >= first.manifest.created_at

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(TrainingError, match="is not a bundle; choose another --out"):
        _write(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"


def test_a_failed_write_leaves_no_staging_folder(tmp_path: Path) -> None:
    def broken_export(path: Path) -> None:
        msg = "export failed"
        raise TrainingError(msg)

    with pytest.raises(TrainingError, match="export failed"):
        write_bundle(
            tmp_path / "bundle",
            _sections(),
            write_model=broken_export,
            golden_images=[np.zeros((SIZE, SIZE, 3), np.uint8)],
        )
    assert list(tmp_path.iterdir()) == []


def test_updated_copy_is_signed_and_the_source_left_alone(
    tmp_path: Path, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    source = _write(tmp_path / "bundle", signing_key)
    before = (source.directory / MANIFEST_FILE).read_text()
    lowered = DecisionPolicy(threshold=1.2, uncertain_low=0.7, method="lowered")

    copy = write_updated_copy(source, tmp_path / "copy", decision=lowered, signing_key=signing_key)

    assert copy.manifest.decision == lowered
    verify_manifest(copy.manifest, load_public_key(signing_pair.public_key))
    assert check_golden(InferenceEngine(copy), copy).passed
    assert (source.directory / MANIFEST_FILE).read_text() == before


def test_a_failed_check_leaves_out_as_it_was(tmp_path: Path) -> None:
    source = _write(tmp_path / "bundle")
    before = (source.directory / MANIFEST_FILE).read_text()
    lowered = DecisionPolicy(threshold=1.2, uncertain_low=0.7)

    def refuse(bundle: ModelBundle) -> None:
        msg = "check failed"
        raise TrainingError(msg)

    with pytest.raises(TrainingError, match="check failed"):
        write_updated_copy(source, source.directory, decision=lowered, check=refuse)
    assert (source.directory / MANIFEST_FILE).read_text() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingError, match="a file, not a folder"):
        write_updated_copy(source, tmp_path / "file", decision=lowered)
