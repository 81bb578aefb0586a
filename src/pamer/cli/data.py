"""`pamer datasets check`: parse a dataset as its owners ship it and report samples, classes and problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pamer.cli._app import app, fail

# the generic reader `images`: one image per clip listed in a csv
LabelsOption = Annotated[
    Path | None, typer.Option("--labels", help="images: the csv of subject, clip, label, file[, dataset] per clip.")
]
ClassesOption = Annotated[
    str | None, typer.Option("--classes", help="images: class names in code order, e.g. negative,positive,surprise.")
]

datasets_app = typer.Typer(help="Read the micro-expression datasets from their own sheets and folders.")
app.add_typer(datasets_app, name="datasets")


def _roots(name: str, roots: list[str]) -> Path | dict[str, Path]:
    """One root, or for composite one `PART=PATH` per part."""
    if name != "composite":
        if len(roots) != 1:
            raise fail(f"{name} takes one --root PATH, got {len(roots)}")
        return Path(roots[0])
    from pamer.data.composite import PARTS

    parts: dict[str, Path] = {}
    for item in roots:
        part, sep, path = item.partition("=")
        if not sep or part not in PARTS or not path:
            raise fail(f"composite takes --root PART=PATH with PART in {', '.join(PARTS)}; got {item!r}")
        parts[part] = Path(path)
    missing = [p for p in PARTS if p not in parts]
    if missing:
        raise fail(f"composite needs --root {'=PATH, --root '.join(missing)}=PATH as well")
    return parts


def read_dataset(
    name: str,
    roots: list[str],
    protocol: str | None,
    sheet: Path | None,
    labels: Path | None = None,
    classes: str | None = None,
):
    """`pamer.data.read` from the command line's --root/--protocol/--sheet (and for images --labels/--classes);
    bad input -> one error line."""
    from pamer.data import DATASETS, DatasetError, read

    if name not in DATASETS:
        raise fail(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    options: dict = {}
    if sheet is not None:
        if name == "images":
            raise fail("--sheet does not apply to images: give its csv with --labels")
        if name in ("composite", "smic"):
            raise fail(f"--sheet does not apply to {name} (it has no single sheet)")
        options["sheet"] = sheet
    if name == "images":
        options.update(labels=labels, classes=classes)
    elif labels is not None or classes is not None:
        raise fail(f"--labels and --classes apply to images only, not {name}")
    try:
        return read(name, _roots(name, roots), protocol, **options)
    except (DatasetError, ValueError) as exc:
        raise fail(str(exc)) from None


@datasets_app.command("check")
def check_command(
    name: Annotated[
        str, typer.Argument(help="casme2, samm, smic, smic-e, casme3, mmew, 4dme, composite, htnet or images.")
    ],
    root: Annotated[
        list[str],
        typer.Option(
            "--root", help="The dataset folder; for composite, once per part: --root casme2=PATH (samm, smic)."
        ),
    ],
    protocol: Annotated[str | None, typer.Option("--protocol", help="Label set (default: the paper's).")] = None,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="The annotation sheet, when it is not in the root.")
    ] = None,
    labels: LabelsOption = None,
    classes: ClassesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a report.")] = False,
) -> None:
    """Parse a dataset and print its samples, subjects, per-class counts and every problem found."""
    index = read_dataset(name, root, protocol, sheet, labels, classes)
    summary = index.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from pamer.data import get_protocol

    console = Console()
    console.print(
        f"{name} (protocol {get_protocol(name, protocol).name}): "
        f"{summary['samples']} samples, {summary['subjects']} subjects"
    )
    classes = Table(show_header=True)
    classes.add_column("class")
    classes.add_column("samples", justify="right")
    for label, count in summary["classes"].items():
        classes.add_row(label, str(count))
    console.print(classes)
    if not index.problems:
        console.print("no problems found")
        return
    problems = Table(title=f"{len(index.problems)} problem(s)", show_header=True)
    problems.add_column("clip", no_wrap=True)
    problems.add_column("kind", no_wrap=True)
    problems.add_column("detail")
    for p in index.problems:
        problems.add_row(p.clip, p.kind, p.detail)
    console.print(problems)
