"""What a training run may vary: ``TrainSettings``, kept free of torch.

The ``linewatch train`` options take their defaults from this class, so the
CLI and the trainer cannot drift apart; keeping torch out of this module keeps
``linewatch --help`` fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_PRESET", "PRESETS", "DensityHeadMode", "PresetName", "TrainSettings"]

PresetName = Literal["fast", "accurate"]
DensityHeadMode = Literal["off", "max", "mean", "alone"]
DEFAULT_PRESET: PresetName = "fast"
# What each preset sets; any value given explicitly wins. The class defaults below are
# DEFAULT_PRESET's values, so TrainSettings() is that preset. Measured in
# bench/detector_real.py (README "How it decides").
# The density head is on in fast (bsdata_pitting, two seeds: image AUROC +0.02-0.03,
# false alarms at 95% caught 0.41 against 0.55, no latency cost); accurate keeps it
# off until it is measured at 512 px.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"input_size": 256, "bank_sizes": (4096, 2048), "density_head": "mean"},
    "accurate": {"input_size": 512, "bank_sizes": (4096, 2048), "density_head": "off"},
}


class TrainSettings(BaseModel):
    """What a training run may vary; every value is recorded in the manifest and MLflow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A named set of the values below, recorded in the manifest (see PRESETS).
    preset: PresetName = DEFAULT_PRESET

    # The input holds about input_size² pixels, shaped like the training images
    # unless keep_aspect_ratio is off (then it is an input_size square).
    input_size: int = Field(default=256, ge=64, le=1024, multiple_of=32)
    keep_aspect_ratio: bool = True
    # Each feature level's bank holds this share of its good patches, up to its size
    # below (finest level first). At 256x256 the search writes 1024 x 8192 distances at
    # stride 8 and 256 x 4096 at stride 16, as fast on 2 cores as one 4096-entry bank
    # of both levels' features at stride 8 was (bench/detector.py).
    coreset_ratio: float = Field(default=0.25, gt=0.0, le=1.0)
    bank_sizes: tuple[int, ...] = (4096, 2048)
    # The coreset is chosen from at most this many patches per level (a seeded random
    # sample; see train._coreset_candidates); None: from all of them.
    coreset_max_candidates: int | None = Field(default=300_000, ge=1000)
    calibration_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    min_calibration_images: int = Field(default=3, ge=1)
    target_false_alarm_rate: float = Field(default=0.05, gt=0.0, lt=1.0)
    band_margin: float = Field(default=0.75, ge=0.0)
    smoothing_sigma_patches: float = Field(default=0.5, gt=0.0)
    # Weight of each patch's colour relative to its surroundings in the finest level's
    # search (PatchCoreModel.colour_contrast); 0 searches on backbone features alone.
    colour_contrast_weight: float = Field(default=32.0, ge=0.0)
    # The backbone's FEATURE_BLOCKS, written out because importing the backbone loads
    # torch; tests/unit/test_train_cli_defaults.py keeps the two equal.
    feature_blocks: tuple[int, ...] = (4, 10)
    # A Gaussian density of each level's normal patches beside its memory bank
    # (PatchCoreModel's GaussianHead: per-location mean, shared covariance, Mahalanobis
    # distance, normalised per location like the banks' distances): "max" or "mean"
    # joins it to the nearest-neighbour map, "alone" scores with it only, "off" leaves it out.
    density_head: DensityHeadMode = "mean"
    leave_one_out_calibration: bool = True
    patch_normalisation: bool = True
    border_tail_correction: bool = True  # see fitting.border_tail_factors
    normalisation_prior_images: float = Field(default=8.0, ge=0.0)
    seed: int = 0
    batch_size: int = Field(default=8, ge=1)
    # Name and skip train/good files that do not decode (up to 10% of them; see train.py).
    skip_unreadable: bool = True

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill in the preset's values for every field not given explicitly."""
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        preset = data["preset"]
        if preset not in PRESETS:
            return data  # the field's own validation names the allowed values
        return {**PRESETS[preset], **data}

    @model_validator(mode="after")
    def _one_bank_per_level(self) -> TrainSettings:
        if len(self.bank_sizes) != len(self.feature_blocks):
            msg = (
                f"bank_sizes {self.bank_sizes}: give one size per feature block "
                f"{self.feature_blocks}"
            )
            raise ValueError(msg)
        if min(self.bank_sizes) < 16:
            msg = f"bank_sizes {self.bank_sizes}: each bank needs at least 16 entries"
            raise ValueError(msg)
        return self
