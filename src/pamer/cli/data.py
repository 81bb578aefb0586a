"""`pamer datasets check`: parse a dataset as its owners ship it and report samples, classes and problems."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pamer.cli._app import app, fail

if TYPE_CHECKING:  # pamer.data is imported when a command runs: `pamer --help` stays quick
    from pamer.data import DatasetIndex

# the generic reader `images`: one image per clip listed in a csv
LabelsOption = Annotated[
    Path | None, typer.Option("--labels", help="images: the csv of subject, clip, label, file[, dataset] per clip.")
]
ClassesOption = Annotated[
    str | None, typer.Option("--classes", help="images: class names in code order, e.g. negative,positive,surprise.")
]

datasets_app = typer.Typer(help="Read the micro-expression datasets from their own sheets and folders.")
app.add_typer(datasets_app, name="datasets")


def _per_part(option: str, items: list[str], parts: tuple[str, ...]) -> dict[str, Path]:
    """Composite options given once per part, `PART=PATH` with PART in `parts`."""
    found: dict[str, Path] = {}
    for item in items:
        part, sep, path = item.partition("=")
        if not sep or part not in parts or not path:
            raise fail(f"composite takes {option} PART=PATH with PART in {', '.join(parts)}; got {item!r}")
        if part in found:
            raise fail(f"composite takes {option} {part}=PATH once, got it twice")
        found[part] = Path(path)
    return found


def _roots(name: str, roots: list[str]) -> Path | dict[str, Path]:
    """One root, or for composite one `PART=PATH` per part."""
    if name != "composite":
        if len(roots) != 1:
            raise fail(f"{name} takes one --root PATH, got {len(roots)}")
        return Path(roots[0])
    from pamer.data.composite import PARTS

    parts = _per_part("--root", roots, PARTS)
    missing = [p for p in PARTS if p not in parts]
    if missing:
        raise fail(f"composite needs --root {'=PATH, --root '.join(missing)}=PATH as well")
    return parts


def _options(name: str, sheets: list[str], frames: list[str]) -> dict:
    """The reader options of --sheet and --frames: one PATH, or for composite one `PART=PATH` per part given."""
    from pamer.data import DATASETS
    from pamer.data.composite import PARTS, SHEET_PARTS

    if name == "composite":
        return {"sheets": _per_part("--sheet", sheets, SHEET_PARTS), "frames": _per_part("--frames", frames, PARTS)}
    accepted = inspect.signature(DATASETS[name]).parameters  # what this reader reads besides its root
    options = {}
    for option, key, items in (("--sheet", "sheet", sheets), ("--frames", "frames", frames)):
        if not items:
            continue
        if key not in accepted:
            raise fail(f"{option} does not apply to {name} (it has no {'sheet' if key == 'sheet' else 'frame tree'})")
        if len(items) > 1:
            raise fail(f"{name} takes one {option} PATH, got {len(items)}")
        options[key] = Path(items[0])
    return options


def read_dataset(
    name: str,
    roots: list[str],
    protocol: str | None,
    sheets: list[str] | None = None,
    frames: list[str] | None = None,
    labels: Path | None = None,
    classes: str | None = None,
) -> DatasetIndex:
    """`pamer.data.read` from the command line's --root/--protocol/--sheet/--frames (and for
    images --labels/--classes); bad input -> one error line.

    `sheets` and `frames` are the values of the repeatable options: one PATH, or for composite `PART=PATH`.
    """
    from pamer.data import DATASETS, read

    if name not in DATASETS:
        raise fail(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    options = _options(name, sheets or [], frames or [])
    if name == "images":
        options.update(labels=labels, classes=classes)
    elif labels is not None or classes is not None:
        raise fail(f"--labels and --classes apply to images only, not {name}")
    return read(name, _roots(name, roots), protocol, **options)


def frame_tree_lines(index: DatasetIndex) -> list[str]:
    """What `datasets check` and `prepare` print about where the frames were read from: one line per dataset
    (`frames: PATH`, or `casme2 frames: PATH` for the parts of a composite), then any note on the choice."""
    several = len(index.frame_trees) > 1
    lines = [f"{name + ' ' if several else ''}frames: {path}" for name, path in index.frame_trees.items()]
    return lines + [f"note: {note}" for note in index.notes]


SHEET_HELP = "The annotation sheet, when it is not in the root; for composite, per part: --sheet casme2=PATH."
FRAMES_HELP = (
    "The folder holding the clip folders (e.g. ROOT/Cropped), instead of the one found under the root; "
    "for composite, per part: --frames casme2=DIR."
)


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
    sheet: Annotated[list[str] | None, typer.Option("--sheet", help=SHEET_HELP, metavar="[PART=]PATH")] = None,
    frames: Annotated[list[str] | None, typer.Option("--frames", help=FRAMES_HELP, metavar="[PART=]DIR")] = None,
    labels: LabelsOption = None,
    classes: ClassesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a report.")] = False,
) -> None:
    """Parse a dataset and print its samples, subjects, per-class counts, where its frames were read from and
    every problem found."""
    index = read_dataset(name, root, protocol, sheet, frames, labels, classes)
    summary = index.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from pamer.data import get_protocol

    console = Console()
    console.print(
        f"{name} (protocol {get_protocol(name, protocol).name}): "
        f"{summary['samples']} samples, {summary['subjects']} subjects"
    )
    for line in frame_tree_lines(index):
        # as written: paths may hold [brackets] (rich markup), and a wrapped path cannot be copied
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    classes = Table(show_header=True)
    classes.add_column("class")
    classes.add_column("samples", justify="right")
    for label, count in summary["classes"].items():
        classes.add_row(Text(label), str(count))  # as written: a csv's label may hold [brackets] (rich markup)
    console.print(classes)
    if summary["aus"] is None:
        console.print("action units: none coded (the dataset's files give no AU coding)")
    else:
        console.print(f"action units: coded on {summary['aus_coded']} of {summary['samples']} clips")
        aus = Table(show_header=True)
        aus.add_column("AU", justify="right")
        aus.add_column("clips", justify="right")
        for number, count in summary["aus"].items():
            aus.add_row(number, str(count))
        console.print(aus)
    if not index.problems:
        console.print("no problems found")
        return
    problems = Table(title=f"{len(index.problems)} problem(s)", show_header=True)
    problems.add_column("clip", no_wrap=True)
    problems.add_column("kind", no_wrap=True)
    problems.add_column("detail")
    for p in index.problems:
        problems.add_row(Text(p.clip), Text(p.kind), Text(p.detail))  # as written: paths may hold [brackets]
    console.print(problems)
