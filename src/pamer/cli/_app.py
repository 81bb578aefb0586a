"""The typer application that every `pamer.cli` module adds its commands to."""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from pamer import __version__
from pamer.errors import PamerError


class PamerGroup(TyperGroup):
    """The command group: a `PamerError` from any command is printed as one line (exit status 2), and so is an
    allocation that failed (`out_of_memory`); every other exception is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PamerError as err:
            raise fail(str(err)) from None
        except Exception as err:
            detail = out_of_memory(err)
            if detail is None:
                raise
            raise fail(
                f"out of memory ({detail}): lower train.batch_size or the input size, or run where more memory is "
                "free; what was written before is kept"
            ) from None


def out_of_memory(err: BaseException) -> str | None:
    """The first line of `err` when it is a failed allocation (Python's, torch's on the CPU or a GPU, OpenCV's),
    else None: not a bug of pamer but settings too large for the machine."""
    # torch and cv2 are looked up, not imported: a command that did not load them cannot have raised their errors
    torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    failed = (
        isinstance(err, MemoryError)
        or (torch is not None and isinstance(err, torch.OutOfMemoryError))  # a GPU's
        or (isinstance(err, RuntimeError) and "can't allocate memory" in text)  # torch's CPU allocator
        or (cv2 is not None and isinstance(err, cv2.error) and "Insufficient memory" in text)
    )
    return first if failed else None


app = typer.Typer(
    name="pamer",
    cls=PamerGroup,
    help="Facial micro-expression recognition: datasets, face-alignment cache, PA-MSC network, LOSO evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pamer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """pamer command line."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear error line to stderr and return the Exit to raise (`raise fail(...)`)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)
