"""`pamer prepare`: align every clip of a dataset once and write the preprocessing cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail
from pamer.cli.data import FRAMES_HELP, SHEET_HELP, ClassesOption, LabelsOption, frame_tree_lines, read_dataset


@app.command("prepare")
def prepare_command(
    name: Annotated[
        str, typer.Argument(help="casme2, samm, smic, smic-e, casme3, mmew, 4dme, composite, htnet or images.")
    ],
    root: Annotated[
        list[str],
        typer.Option("--root", help="The dataset folder; for composite, once per part: --root casme2=PATH."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder of caches; the cache is written in a subfolder of it.")],
    protocol: Annotated[str | None, typer.Option("--protocol", help="Label set (default: the paper's).")] = None,
    sheet: Annotated[list[str] | None, typer.Option("--sheet", help=SHEET_HELP, metavar="[PART=]PATH")] = None,
    frames: Annotated[list[str] | None, typer.Option("--frames", help=FRAMES_HELP, metavar="[PART=]DIR")] = None,
    size: Annotated[
        int | None,
        typer.Option("--size", help="Side of the square crops in pixels (default 256; htnet/images: the images' own)."),
    ] = None,
    margin: Annotated[float, typer.Option("--margin", help="Crop margin, fraction of the face box.")] = 0.2,
    workers: Annotated[int, typer.Option("--workers", help="Processes aligning clips in parallel.")] = 1,
    representation: Annotated[
        str | None,
        typer.Option(
            "--representation",
            help="diff (crops) or flow (+ TV-L1 flow; needs the flow extra); htnet/images: flow or apex (required).",
        ),
    ] = None,
    labels: LabelsOption = None,
    classes: ClassesOption = None,
    clip_frames: Annotated[
        int,
        typer.Option(
            "--clip-frames",
            help="Also cache each clip's aligned grey frames, onset to offset, resampled to this many frames "
            "(linear in time): the input of the classic method lbptop (10 in its recipe). 0: none.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Align every clip (dlib face, eye-level rotation, square crop) and cache the onset/apex crops.

    The frames are read from the folder under the root that holds the clips (printed first; `--frames DIR`
    names another).

    A killed run resumes when rerun with the same arguments. Clips with no face are kept with a centre crop,
    clips with a missing or corrupt frame are skipped; both are listed at the end and in the cache's
    manifest.csv. Prints the cache directory, which `pamer loso` / `pamer train` take as `data.cache`.

    htnet and images (ready-made images, one per clip) are read as they are: no alignment; --representation
    flow caches their flow images, apex their apex crops. Every cache also holds each clip's 68 landmarks (onset and
    apex; for htnet/images the apex's, found on the apex crop where there is one) and its action units where the
    dataset codes them.
    """
    if workers < 1:
        raise fail(f"--workers must be at least 1, got {workers}")
    from pamer.data import get_protocol
    from pamer.data.images import ImageIndex
    from pamer.preprocess.cache import read_manifest
    from pamer.preprocess.pipeline import prepare

    index = read_dataset(name, root, protocol, sheet, frames, labels, classes)
    if isinstance(index, ImageIndex):
        _prepare_images(index, out, representation, size, get_protocol(name, protocol).name)
        return
    if representation == "apex":
        raise fail(
            f"a {name} cache always holds the aligned apex crops: prepare it with --representation diff (the default) "
            "and train with data.representation: apex"
        )
    for line in frame_tree_lines(index):
        typer.echo(line, err=True)
    directory = prepare(
        index,
        out,
        size=256 if size is None else size,
        workers=workers,
        representation=representation or "diff",
        margin=margin,
        progress=not quiet,
        protocol=get_protocol(name, protocol).name,  # the default named, so both spellings share a cache
        clip_frames=clip_frames,
    )
    rows = read_manifest(directory)
    cached = [r for r in rows if r["status"] == "cached"]
    no_face = [r for r in cached if r["face"] == "none"]
    skipped = [r for r in rows if r["status"] != "cached"]
    for row in no_face + skipped:
        typer.echo(f"{row['status']}: {row['subject']}/{row['clip']}: {row['problems']}", err=True)
    typer.echo(
        f"{len(cached)} of {len(rows)} clips cached ({len(no_face)} with no face found: centre crop), "
        f"{len(skipped)} skipped; manifest: {directory / 'manifest.csv'}",
        err=True,
    )
    _echo_landmarks(cached, "onset, apex")
    typer.echo(str(directory))


def _echo_landmarks(cached: list[dict[str, str]], which: str) -> None:
    """One line: how many cached clips have the landmarks of `which` (the manifest's note for them); the others hold
    NaN where no face was found, and the manifest says why."""
    found = sum(r["landmarks"].startswith(which) for r in cached)
    typer.echo(f"landmarks of the {which}: {found} of {len(cached)} cached clips; NaN where none (manifest)", err=True)


def _prepare_images(index, out: Path, representation: str | None, size: int | None, protocol: str) -> None:
    """`pamer prepare htnet|images`: cache the clips' ready-made images; print what was skipped and the reader's
    problems by name, then the cache directory."""
    from pamer.preprocess.cache import read_manifest
    from pamer.preprocess.images import REPRESENTATIONS, prepare_images

    if representation not in REPRESENTATIONS:
        raise fail(f"{index.name} needs --representation {' or '.join(REPRESENTATIONS)} (which images to cache)")
    directory = prepare_images(index, out, representation, size=size, protocol=protocol)
    rows = read_manifest(directory)
    skipped = [r for r in rows if r["status"] != "cached"]
    for problem in index.problems:
        typer.echo(f"problem: {problem.clip}: {problem.kind}: {problem.detail}", err=True)
    for row in skipped:
        typer.echo(f"skipped: {row['dataset']}/{row['subject']}/{row['clip']}: {row['problems']}", err=True)
    typer.echo(
        f"{len(rows) - len(skipped)} of {len(rows)} clips cached ({representation} images as given: no "
        f"alignment), {len(skipped)} skipped, {len(index.problems)} problem(s) found by the reader; "
        f"manifest: {directory / 'manifest.csv'}, problems: {directory / 'problems.csv'}",
        err=True,
    )
    _echo_landmarks([r for r in rows if r["status"] == "cached"], "apex")
    typer.echo(str(directory))
