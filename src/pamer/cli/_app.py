"""The typer application that every `pamer.cli` module adds its commands to."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from pamer import __version__
from pamer.errors import PamerError


class PamerGroup(TyperGroup):
    """The command group: a `PamerError` from any command is printed as one line (exit status 2); every other
    exception is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PamerError as err:
            raise fail(str(err)) from None


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
