"""`pamer models`: the registered networks with their size and cost."""

from __future__ import annotations

import typer

from pamer.cli._app import app, fail


@app.command("models")
def models_command(
    flops: bool = typer.Option(False, "--flops", help="Also count forward GFLOPs (torch.utils.flop_counter)."),
    size: int = typer.Option(
        224, "--size", help="Input height and width for --flops, in pixels (fixed-size networks use their own)."
    ),
) -> None:
    """List the registered networks: name, input size, parameters and (with --flops) forward GFLOPs per image."""
    if size < 16:
        raise fail(f"--size must be at least 16 pixels (the network downsamples 32x), got {size}")
    import torch
    from rich.console import Console
    from rich.table import Table

    from pamer.models import count_flops, count_parameters, create_model, describe_model, list_models, model_input_size

    table = Table(title=f"pamer models (5 classes{f', {size}x{size} input unless fixed' if flops else ''})")
    table.add_column("name", no_wrap=True)
    table.add_column("input", justify="right")
    table.add_column("params (M)", justify="right")
    if flops:
        table.add_column("GFLOPs", justify="right")
    table.add_column("description")
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no weight initialisation
            model = create_model(name)
        fixed = model_input_size(name)
        params = count_parameters(model) / 1e6
        # four decimals for the tiny networks (STSTNet: 1.7 thousand parameters) that would read as 0.00
        row = [name, str(fixed) if fixed else "any", f"{params:.2f}" if params >= 0.01 else f"{params:.4f}"]
        if flops:
            row.append(f"{count_flops(name, fixed or size) / 1e9:.2f}")
        table.add_row(*row, describe_model(name))
    Console().print(table)
