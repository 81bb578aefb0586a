"""`pamer prepare`: align every clip of a dataset once and write the preprocessing cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail


@app.command("prepare")
def prepare_command(
    name: Annotated[str, typer.Argument(help="casme2, samm, smic, smic-e, casme3, mmew, 4dme or composite.")],
    root: Annotated[
        list[str],
        typer.Option("--root", help="The dataset folder; for composite, once per part: --root casme2=PATH."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder of caches; the cache is written in a subfolder of it.")],
    protocol: Annotated[str | None, typer.Option("--protocol", help="Label set (default: the paper's).")] = None,
    sheet: Annotated[Path | None, typer.Option("--sheet", help="The annotation sheet, if not in the root.")] = None,
    size: Annotated[int, typer.Option("--size", help="Side of the square face crops in pixels.")] = 256,
    margin: Annotated[float, typer.Option("--margin", help="Crop margin, fraction of the face box.")] = 0.2,
    workers: Annotated[int, typer.Option("--workers", help="Processes aligning clips in parallel.")] = 1,
    representation: Annotated[
        str, typer.Option("--representation", help="diff (crops) or flow (+ TV-L1 flow; needs the flow extra).")
    ] = "diff",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Align every clip (dlib face, eye-level rotation, square crop) and cache the onset/apex crops.

    A killed run resumes when rerun with the same arguments. Clips with no face are kept with a centre crop,
    clips with a missing or corrupt frame are skipped; both are listed at the end and in the cache's
    manifest.csv. Prints the cache directory, which `pamer loso` / `pamer train` take as `data.cache`.
    """
    if workers < 1:
        raise fail(f"--workers must be at least 1, got {workers}")
    from pamer.cli.data import read_dataset
    from pamer.data import DatasetError, get_protocol
    from pamer.preprocess.cache import prepare, read_manifest

    index = read_dataset(name, root, protocol, sheet)
    try:
        directory = prepare(
            index,
            out,
            size=size,
            workers=workers,
            representation=representation,
            margin=margin,
            progress=not quiet,
            protocol=get_protocol(name, protocol).name,  # the default named, so both spellings share a cache
        )
    except (DatasetError, ValueError, ImportError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # e.g. --out on a read-only or full disk
        raise fail(f"cannot write the cache under {out}: {exc}") from None
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
    typer.echo(str(directory))
