"""The typer application that every `pamer.cli` module adds its commands to."""

from __future__ import annotations

import typer

from pamer import __version__

app = typer.Typer(
    name="pamer",
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
