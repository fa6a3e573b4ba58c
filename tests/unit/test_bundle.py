import json
import tarfile
from pathlib import Path

import pytest

from edge.runtime.bundle import MANIFEST_FILE, load_bundle
from edge.runtime.errors import BundleCorrupt, BundleIncompatible
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
