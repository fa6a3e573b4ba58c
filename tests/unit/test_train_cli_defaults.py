"""`linewatch train` defaults are TrainSettings' own, read from the class, so they cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from cloud.cli.app import app
from cloud.cli.commands import train as _train_command  # noqa: F401  (registers the command)
from cloud.train_settings import DEFAULT_PRESET, PRESETS, TrainSettings


def test_train_options_default_to_the_settings() -> None:
    command = typer.main.get_command(app)
    train = command.commands["train"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in train.params}
    shared = set(defaults) & set(TrainSettings.model_fields)
    assert {
        "input_size",
        "keep_aspect_ratio",
        "bank_sizes",
        "density_head",
        "colour_contrast_weight",
        "target_false_alarm_rate",
        "band_margin",
        "seed",
        "skip_unreadable",
    } <= shared
    for name in shared:
        if name in PRESETS["fast"]:
            # Unset means "the preset's value": explicit flags override the preset.
            assert defaults[name] is None, name
        else:
            assert defaults[name] == TrainSettings.model_fields[name].default, name


def test_the_class_defaults_are_the_default_preset() -> None:
    for name, value in PRESETS[DEFAULT_PRESET].items():
        assert getattr(TrainSettings(), name) == value, name
    assert TrainSettings().preset == DEFAULT_PRESET


def test_a_preset_fills_only_what_is_not_given() -> None:
    accurate = TrainSettings(preset="accurate")
    assert accurate.input_size == PRESETS["accurate"]["input_size"]
    assert accurate.bank_sizes == PRESETS["accurate"]["bank_sizes"]
    assert TrainSettings(preset="fast", density_head="off").density_head == "off"
    mixed = TrainSettings(preset="accurate", input_size=320)
    assert mixed.input_size == 320
    assert mixed.bank_sizes == PRESETS["accurate"]["bank_sizes"]
    # What the manifest records reloads to the same settings.
    assert TrainSettings.model_validate(mixed.model_dump(mode="json")) == mixed


def test_the_trainer_uses_the_same_settings_and_the_backbones_blocks() -> None:
    from cloud.detector.backbone import FEATURE_BLOCKS
    from cloud.train import TrainSettings as TrainerSettings

    assert TrainerSettings is TrainSettings
    assert TrainSettings().feature_blocks == FEATURE_BLOCKS


def test_the_train_command_loads_without_torch() -> None:
    probe = "import sys, cloud.cli.commands.train\nprint('torch' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", "linewatch --help would load torch"


def test_an_unknown_preset_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--preset", "best"]
    )
    assert result.exit_code == 2
    assert "fast" in result.output
    assert "accurate" in result.output
