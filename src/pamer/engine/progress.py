"""Progress of a LOSO run: rich bars (over folds, and over epochs of the fold in this process) or log lines."""

from __future__ import annotations

import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pamer.engine.fold import EpochCallback, FoldOutput
from pamer.engine.stacked import StackedEpochCallback

__all__ = ["LosoProgress"]


class LosoProgress:
    """Rich bars (overall over folds, one per fold over epochs) or, quiet, one log line per finished fold."""

    def __init__(self, total: int, done: int, epochs: int, quiet: bool) -> None:
        self.epochs = epochs
        self.bar = None
        self.fold_task = None
        if not quiet:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self.overall = self.bar.add_task("folds", total=total, completed=done)

    def __enter__(self) -> LosoProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def epoch_callback(self, fold: int) -> EpochCallback | None:
        """A callback that shows fold `fold`'s epochs (None when quiet: nothing to show per epoch)."""
        if self.bar is None:
            return None
        if self.fold_task is not None:
            self.bar.remove_task(self.fold_task)
        self.fold_task = self.bar.add_task(f"fold {fold + 1}", total=self.epochs)

        def update(epoch: int, loss: float, acc: float) -> None:
            self.bar.update(
                self.fold_task, completed=epoch, description=f"fold {fold + 1} loss {loss:.3f} acc {acc:.3f}"
            )

        return update

    def stack_callback(self, folds: list[int]) -> StackedEpochCallback | None:
        """A callback that shows the epochs of a stack of folds trained together (None when quiet)."""
        if self.bar is None:
            return None
        if self.fold_task is not None:
            self.bar.remove_task(self.fold_task)
        name = f"folds {folds[0] + 1}-{folds[-1] + 1}" if len(folds) > 1 else f"fold {folds[0] + 1}"
        self.fold_task = self.bar.add_task(name, total=self.epochs)

        def update(epoch: int, per_fold: list[tuple[float, float]]) -> None:
            loss = sum(h[0] for h in per_fold) / len(per_fold)
            acc = sum(h[1] for h in per_fold) / len(per_fold)
            self.bar.update(self.fold_task, completed=epoch, description=f"{name} mean loss {loss:.3f} acc {acc:.3f}")

        return update

    def fold_done(self, output: FoldOutput, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.advance(self.overall)
        else:
            print(
                f"fold {output.subject}: {len(output.test_idx)} clips, accuracy {accuracy:.3f}, {output.seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
