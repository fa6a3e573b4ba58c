"""`linewatch train` defaults are TrainSettings' (the CLI repeats them for a fast --help)."""

from __future__ import annotations

import typer

from cloud.cli.app import app
from cloud.cli.commands import train as _train_command  # noqa: F401  (registers the command)
from cloud.train import TrainSettings


def test_train_options_default_to_the_settings() -> None:
    command = typer.main.get_command(app)
    train = command.commands["train"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in train.params}
    shared = set(defaults) & set(TrainSettings.model_fields)
    assert {
        "input_size",
        "bank_sizes",
        "colour_contrast_weight",
        "target_false_alarm_rate",
        "band_margin",
    } <= shared
    for name in shared:
        assert defaults[name] == TrainSettings.model_fields[name].default, name
