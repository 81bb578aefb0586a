"""Shared test options and fixtures."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ANNOTATIONS = SHARED / "datasets" / "annotations"
FACES = SHARED / "datasets" / "faces"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--runslow") or "slow" in (config.getoption("-m") or "")
    import torch

    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow or -m slow"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def annotations_dir() -> Path:
    """`../shared/datasets/annotations` (the datasets' real sheets); skips when absent, as in a user's clone."""
    if not ANNOTATIONS.is_dir():
        pytest.skip(f"real annotation sheets not found at {ANNOTATIONS} (../shared is absent outside CI)")
    return ANNOTATIONS


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """`../shared/datasets/faces` (real face photos + dlib's landmark XML); skips when absent."""
    if not FACES.is_dir():
        pytest.skip(f"real face photos not found at {FACES} (../shared is absent outside CI)")
    return FACES


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one torch thread: small tensors gain nothing from a second one, and on a busy host each op
    waits for it (measured: a float64 gradcheck 26 s with 2 threads, 0.2 s with 1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").write_bytes(b"x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder no one can write into: mode 0o555 and, for root (who ignores modes), the immutable
    attribute (`chattr +i`); skips where neither makes it read-only."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _can_write(folder):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _can_write(folder):
            pytest.skip("cannot make a read-only folder here (root, and chattr +i is not permitted)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)
