"""The bundle as an MLflow pyfunc model: what MLflow stores is exactly what a node receives.

Each registered version carries the bundle's files as the artifacts of a
``BundlePythonModel``, logged "from code": MLflow stores the small script
``_CODE``, which imports the class as ``cloud.registry.BundlePythonModel``.
Versions logged before keep that script, so the import path must stay valid.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud.errors import RegistryError
from edge.runtime.bundle import MANIFEST_FILE, ModelBundle, load_bundle
from edge.runtime.engine import InferenceEngine

with warnings.catch_warnings():
    # Importing mlflow.pyfunc warns about MLflow's own ``Any`` type hints (mlflow.types.responses);
    # nothing a caller can act on, and it would fail every test run with warnings as errors.
    warnings.filterwarnings(
        "ignore", message=r".*Any type hint is inferred as AnyType", category=UserWarning
    )
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.pyfunc.model import PythonModel
    from mlflow.types import Schema, TensorSpec

__all__ = ["MODEL_ARTIFACT_NAME", "BundlePythonModel", "assemble_bundle", "log_bundle_model"]

MODEL_ARTIFACT_NAME = "bundle"
_PYFUNC_REQUIREMENTS = ("numpy", "onnxruntime", "opencv-python-headless", "pydantic", "mlflow")
_CODE_FILE = "bundle_pyfunc.py"
_CODE = (
    '"""Models-from-code entry point: MLflow runs this file to build the model."""\n'
    "import mlflow\n\n"
    "from cloud.registry import BundlePythonModel\n\n"
    "mlflow.models.set_model(BundlePythonModel())\n"
)


class BundlePythonModel(PythonModel):
    """The bundle as an MLflow pyfunc: images in, calibrated image scores out.

    The artifacts are the bundle's files keyed by their path inside the bundle;
    ``load_context`` puts them back together, verifies the sha256 sums with
    ``load_bundle`` and runs the graph with ONNX Runtime, exactly as a node does.
    """

    def load_context(self, context: Any) -> None:
        """Reassemble and verify the bundle, then open an ONNX Runtime session on it."""
        workdir = Path(tempfile.mkdtemp(prefix="linewatch-pyfunc-"))
        # The copy lives as long as this model object; removed quietly when it goes.
        weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True)
        bundle_dir = assemble_bundle(context.artifacts, workdir / "bundle")
        self._engine = InferenceEngine(load_bundle(bundle_dir))

    def predict(
        self,
        context: Any,
        model_input: np.ndarray,  # MLflow reads this hint: it must be the bare class
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Score uint8 BGR images, (N, H, W, 3) or one (H, W, 3), of any size."""
        images = np.asarray(model_input)
        if images.ndim == 3:
            images = images[np.newaxis]
        batch = [np.ascontiguousarray(image, dtype=np.uint8) for image in images]
        return self._engine.infer_images(batch).image_scores


def assemble_bundle(artifacts: Mapping[str, str], target: Path) -> Path:
    """Copy artifact files (keyed by their path in the bundle) into a bundle directory.

    Raises:
        RegistryError: an artifact key that points outside the bundle.
    """
    target.mkdir(parents=True, exist_ok=True)
    for relative, local_path in artifacts.items():
        destination = target / relative
        if not destination.resolve().is_relative_to(target.resolve()):
            msg = f"model artifacts: {relative!r} points outside the bundle; refusing it"
            raise RegistryError(msg)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, destination)
    return target


def _bundle_files(bundle: ModelBundle) -> dict[str, str]:
    names = [MANIFEST_FILE, bundle.manifest.model_file, *sorted(bundle.manifest.files)]
    return {name: str(bundle.directory / name) for name in names}


_SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
)


def _requirements() -> list[str]:
    pins = []
    for package in _PYFUNC_REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{package}=={metadata.version(package)}")
    return pins


def log_bundle_model(bundle: ModelBundle) -> Any:
    """Log the bundle as a pyfunc model in the active run; return MLflow's ModelInfo."""
    example: npt.NDArray[np.uint8] = np.full((1, 32, 32, 3), 128, dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="linewatch-log-") as workdir:
        code = Path(workdir) / _CODE_FILE
        code.write_text(_CODE)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=str(code),
            artifacts=_bundle_files(bundle),
            input_example=example,
            signature=_SIGNATURE,
            pip_requirements=_requirements(),
            metadata={"bundle": bundle.label, "model_sha256": bundle.manifest.model_sha256},
        )
