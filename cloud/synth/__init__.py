"""Deterministic synthetic line images in the MVTec AD layout, with defect masks."""

from cloud.synth.dataset import MANIFEST_NAME, generate_dataset, is_synth_dataset
from cloud.synth.defects import DEFECT_TYPES, paint_defect
from cloud.synth.parts import SynthPart, compose_part, normalise_size, render_part
from cloud.synth.textures import CATEGORIES, Category, resolve_category
from cloud.synth.video import LinePart, LineVideoLabels, read_video_labels, write_line_video

__all__ = [
    "CATEGORIES",
    "DEFECT_TYPES",
    "MANIFEST_NAME",
    "Category",
    "LinePart",
    "LineVideoLabels",
    "SynthPart",
    "compose_part",
    "generate_dataset",
    "is_synth_dataset",
    "normalise_size",
    "paint_defect",
    "read_video_labels",
    "render_part",
    "resolve_category",
    "write_line_video",
]
