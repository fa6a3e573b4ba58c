"""Anomaly map PNG and overlay JPEG decode, threshold sits at mid-grey."""

from __future__ import annotations

import numpy as np

from edge.visualize import anomaly_map_png, anomaly_map_to_u8, overlay_jpeg
from tests.plugins.edge import decode


def test_map_scale_puts_threshold_at_mid_grey() -> None:
    anomaly_map = np.array([[0.0, 2.0, 4.0, 9.0, np.nan]], dtype=np.float32)
    assert anomaly_map_to_u8(anomaly_map, threshold=2.0).tolist() == [[0, 128, 255, 255, 255]]


def test_map_png_decodes_to_the_same_pixels() -> None:
    anomaly_map = np.linspace(0, 4, 64 * 64, dtype=np.float32).reshape(64, 64)
    decoded = decode(anomaly_map_png(anomaly_map, 2.0))
    assert decoded.shape == (64, 64)
    assert np.array_equal(decoded, anomaly_map_to_u8(anomaly_map, 2.0))


def test_overlay_is_a_jpeg_of_the_image_size() -> None:
    image = np.full((90, 120, 3), 128, dtype=np.uint8)
    anomaly_map = np.zeros((64, 64), dtype=np.float32)
    decoded = decode(overlay_jpeg(image, anomaly_map, 2.0))
    assert decoded.shape == (90, 120, 3)
    small = overlay_jpeg(image, anomaly_map, 2.0, max_side=60)
    assert decode(small).shape == (45, 60, 3)
