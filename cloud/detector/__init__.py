"""The PatchCore-style detector: backbone, inference module, fitting and export."""

from cloud.detector.backbone import EfficientNetLiteFeatures
from cloud.detector.export import export_onnx
from cloud.detector.model import PatchCoreModel

__all__ = ["EfficientNetLiteFeatures", "PatchCoreModel", "export_onnx"]
