"""Time `pamer.data.read` on full-size frame trees (every frame onset..offset) built from the real sheets.

Usage: python benchmarks/read_datasets.py [ANNOTATIONS_DIR]   (default ../shared/datasets/annotations)
Frame files are 8x8 JPEGs; reading lists every clip folder and never decodes an image, so this measures
sheet parsing plus directory listing for trees the size of the real releases.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _trees import build_tree  # noqa: E402
from pamer.data import read  # noqa: E402


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "annotations"
    annotations = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("casme2", "samm", "smic"):
            root = build_tree(name, annotations, Path(tmp) / name, frames="all")
            files = sum(1 for p in root.rglob("*") if p.is_file())
            times = []
            for _ in range(3):
                start = time.perf_counter()
                index = read(name, root, "all")
                times.append(time.perf_counter() - start)
            print(f"{name}: {len(index)} clips, {files} files, read() best of 3: {min(times):.3f} s")


if __name__ == "__main__":
    main()
