"""A retrain takes the settings production was trained with, not today's defaults."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cloud.retrain.service import _settings_of


def _manifest(settings: dict[str, Any] | None) -> Any:
    return SimpleNamespace(training_data=SimpleNamespace(settings=settings))


def test_a_version_from_before_the_density_head_is_retrained_without_one() -> None:
    assert _settings_of(_manifest({"preset": "fast", "input_size": 256})).density_head == "off"
    assert _settings_of(_manifest(None)).density_head == "off"


def test_a_recorded_density_head_is_kept() -> None:
    assert _settings_of(_manifest({"preset": "fast", "density_head": "max"})).density_head == "max"


def test_keys_this_code_no_longer_knows_are_dropped() -> None:
    assert _settings_of(_manifest({"preset": "fast", "retired_knob": 3})).preset == "fast"
