"""`linewatch train` defaults are TrainSettings' own, read from the class, so they cannot drift."""

from __future__ import annotations

import subprocess
import sys

import typer

from cloud.cli.app import app
from cloud.cli.commands import train as _train_command  # noqa: F401  (registers the command)
from cloud.train_settings import TrainSettings


def test_train_options_default_to_the_settings() -> None:
    command = typer.main.get_command(app)
    train = command.commands["train"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in train.params}
    shared = set(defaults) & set(TrainSettings.model_fields)
    assert {
        "input_size",
        "keep_aspect_ratio",
        "bank_sizes",
        "colour_contrast_weight",
        "target_false_alarm_rate",
        "band_margin",
        "seed",
        "skip_unreadable",
    } <= shared
    for name in shared:
        assert defaults[name] == TrainSettings.model_fields[name].default, name


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
