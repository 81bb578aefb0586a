"""`pamer predict`: the micro-expression class of a user's clip, from a model trained with `pamer train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail


@app.command("predict")
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `pamer train`.")],
    video: Annotated[Path | None, typer.Option("--video", help="A video file (any format OpenCV decodes).")] = None,
    frames: Annotated[
        Path | None, typer.Option("--frames", help="A folder of frame images, ordered by the number in their names.")
    ] = None,
    onset: Annotated[
        int | None,
        typer.Option(help="Onset frame number (file-name number for --frames, 0-based for --video). Default: first."),
    ] = None,
    apex: Annotated[
        int | None,
        typer.Option(help="Apex frame number, as for --onset. Default: spotted (largest facial motion after onset)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    picture: Annotated[
        Path | None, typer.Option(help="Write a PNG: the aligned apex face, the motion image, the attention maps.")
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Register the apex onto the onset (remove head motion) first; --no-register: one transform per "
            "clip, exactly as `pamer prepare` aligns a dataset's clips.",
        ),
    ] = True,
) -> None:
    """Recognise the micro-expression in a video or a folder of frames."""
    if (video is None) == (frames is None):
        raise fail("give exactly one of --video FILE or --frames DIR")
    from pamer.clip import read_frame_folder, read_video
    from pamer.predict import Recognizer, check_picture_path

    if picture is not None:
        check_picture_path(picture)
    recognizer = Recognizer.from_dir(model_dir, device=device)
    clip = read_video(video) if video is not None else read_frame_folder(frames)
    for line in clip.warnings:  # before predicting: they explain an onset or apex that is not in the clip
        typer.secho(f"warning: {line}", err=True, fg=typer.colors.YELLOW)
    result = recognizer.predict(clip, onset=onset, apex=apex, register=register)
    if picture is not None:
        result.picture(picture)

    if as_json:
        summary = result.to_dict()
        if picture is not None:
            summary["picture"] = str(picture)
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))  # NaN is not JSON; predict never makes one
        return
    _print_table(result, picture)


def _print_table(result, picture: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{Path(result.source).name}: {result.label}", title_justify="left")
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=20)
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
        style = "bold" if name == result.label else None
        table.add_row(name, f"{p:.3f}", "#" * round(20 * p), style=style)
    console.print(table)
    how = {
        "first": "the first frame",
        "given": "given",
        "spotted": "spotted: most facial motion after the onset",
        "only": "the clip's only frame",
        "interval": "the strongest expression `pamer spot` finds in the long clip",
    }
    for label, number, name, source in (
        ("onset", result.onset, result.onset_name, result.onset_source),
        ("apex: ", result.apex, result.apex_name, result.apex_source),
    ):
        if source == "unused":
            console.print(f"{label} not used: the model reads the apex frame alone")
            continue
        file = "" if name == f"frame {number}" else f" ({name})"
        console.print(f"{label} frame {number}{file}: {how[source]}")
    face = result.face
    if face["face"] == "given":
        console.print("face:  not searched: the model was trained on ready-made face crops, so the frame is one")
    else:
        residual = "" if face["residual_deg"] is None else f", {face['residual_deg']:+.1f} deg left"
        console.print(
            f"face:  found in frame {face['frame']}; eyes levelled by {face['angle_deg']:+.1f} deg{residual}; "
            f"crop square of {face['crop'][2]:.0f} px"
        )
    registration = face.get("registration")
    if isinstance(registration, dict):
        console.print(
            f"registration: apex registered onto the onset; {registration['residual_px']:.2f} px of motion left at "
            "the nose"
        )
    elif registration is not None:
        console.print(f"registration: {registration}")
    console.print("time:  " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in result.timings.items()))
    if picture is not None:
        console.print(f"picture: {picture}")
