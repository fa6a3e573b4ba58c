"""``linewatch synth``: deterministic sample data in the MVTec AD layout, with masks."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app
from cloud.synth import CATEGORIES, DEFECT_TYPES, generate_dataset, write_line_video
from cloud.synth.textures import resolve_category

__all__ = ["synth"]

_CATEGORY_HELP = "Material: " + ", ".join(
    f"{name} ({category.description})" for name, category in CATEGORIES.items()
)


def _parse_size(value: str) -> tuple[int, int]:
    """``256`` or ``320x240`` (width x height) -> ``(width, height)``."""
    text = value.strip().lower()
    try:
        if "x" in text:
            width_text, height_text = text.split("x", 1)
            return int(width_text), int(height_text)
        side = int(text)
    except ValueError as exc:
        msg = f"{value!r} is not a size; use one number (256) or WIDTHxHEIGHT (320x240)"
        raise typer.BadParameter(msg) from exc
    return side, side


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset to.")],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Same seed, same bytes.")] = 0,
    category: Annotated[str, typer.Option("--category", help=_CATEGORY_HELP)] = "metal",
    n_train: Annotated[
        int, typer.Option("--n-train", min=1, help="Good images in train/good.")
    ] = 60,
    n_test_good: Annotated[
        int, typer.Option("--n-test-good", min=0, help="Good images in test/good.")
    ] = 20,
    n_test_per_defect: Annotated[
        int, typer.Option("--n-test-per-defect", min=0, help="Images per defect type.")
    ] = 6,
    size: Annotated[
        str, typer.Option("--size", help="Image size: 256 or WIDTHxHEIGHT (320x240).")
    ] = "256",
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Write into a non-empty folder that is not synth data."),
    ] = False,
    video: Annotated[
        Path | None,
        typer.Option("--video", help="Also write a line video (.avi) of parts passing by."),
    ] = None,
    video_frames: Annotated[
        int, typer.Option("--video-frames", min=1, help="Frames in the video.")
    ] = 200,
    defect_rate: Annotated[
        float,
        typer.Option("--defect-rate", min=0.0, max=1.0, help="Share of defective video parts."),
    ] = 0.1,
) -> None:
    """Write sample line images (good parts and five defect types) with pixel masks."""
    resolve_category(category)
    width, height = _parse_size(size)
    total = n_train + n_test_good + n_test_per_defect * len(DEFECT_TYPES)
    bar = typer.progressbar(length=total, label=category)
    shown: list[bool] = []
    with ExitStack() as stack:

        def advance(done: int, _total: int) -> None:
            # Shown from the first image on, so a refused folder prints only the error.
            if not shown:
                stack.enter_context(bar)
                shown.append(True)
            bar.update(done - bar.pos)

        generate_dataset(
            out,
            seed=seed,
            category=category,
            n_train=n_train,
            n_test_good=n_test_good,
            n_test_per_defect=n_test_per_defect,
            size=(width, height),
            overwrite=overwrite,
            progress=advance,
        )
    typer.echo(
        f"wrote {total} images ({', '.join(DEFECT_TYPES)}) to {out} "
        f"(category {category}, seed {seed}, {width}x{height})"
    )
    if video is not None:
        write_line_video(
            video,
            seed=seed,
            category=category,
            n_frames=video_frames,
            defect_rate=defect_rate,
            size=(width, height),
        )
        typer.echo(f"wrote line video {video} (labels in {video.with_suffix('.json')})")
    typer.echo(f"train on it: linewatch train --data {out} --out bundles/{category}")
