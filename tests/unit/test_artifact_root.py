"""MLflow artifact paths resolve only inside the artifact root they were downloaded to."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import RegistryError
from cloud.registry.versions import _inside_artifacts


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "artifacts/../../outside"])
def test_an_artifact_path_that_leaves_the_root_is_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "download"
    root.mkdir()
    with pytest.raises(RegistryError, match=r"model m version 3: artifact path .* outside"):
        _inside_artifacts(root, path, "m", 3)


def test_a_link_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "download"
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "model.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(RegistryError, match="outside its artifact root"):
        _inside_artifacts(root, "artifacts/model.onnx", "m", 3)


def test_a_path_inside_resolves(tmp_path: Path) -> None:
    root = tmp_path / "download"
    root.mkdir()
    assert _inside_artifacts(root, "artifacts/model.onnx", "m", 3) == (
        root.resolve() / "artifacts" / "model.onnx"
    )
