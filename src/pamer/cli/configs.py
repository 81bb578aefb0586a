"""`pamer configs`: the run configurations shipped with pamer, by name."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from pamer.cli._app import app
from pamer.config import load_config, resolve_config_path, shipped_configs


@app.command("configs")
def configs_command(
    name: Annotated[
        str | None, typer.Argument(help="Print this config (a shipped name such as paper/casme2, or a file).")
    ] = None,
    resolved: Annotated[
        bool, typer.Option("--resolved", help="Print every key with its value after defaults (YAML).")
    ] = False,
) -> None:
    """List the shipped configs (`pamer loso NAME` takes the name), or print one."""
    if name is None:
        for key, path in shipped_configs().items():
            first = path.read_text().splitlines()[0].lstrip("# ").strip()
            typer.echo(f"{key:<28} {first}")
        return
    if resolved:
        typer.echo(yaml.safe_dump(load_config(name).to_dict(), sort_keys=False), nl=False)
    else:
        typer.echo(resolve_config_path(name).read_text(), nl=False)
