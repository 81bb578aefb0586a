"""Build a tiny tree in exactly the layout of the HTNet/STSTNet MEGC2019 folders (`pamer.data.htnet`).

    ROOT/combined_3_class2_for_optical_flow.csv      dataset,sub,filename_o,label,apex,imagename,sub_filename
    ROOT/datasets/STSNet_whole_norm_u_v_os/<sub>_<filename_o> .png      (the space before .png)
    ROOT/datasets/combined_datasets_whole/<imagename>                   (SMIC: s01_s1_ne_01.jpg, not s01_s01_...)
    ROOT/datasets/three_norm_u_v_os/<sub>/u_train|u_test/<label>/<sub>_<filename_o> .png

Flow images are 28 x 28 RGB whose channels are min-max stretched to 0..255 each, as published; each class has its
patch of motion in its own place, so a network can learn something. Apex crops are 224 x 224 JPEGs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

HEADER = "dataset,sub,filename_o,label,apex,imagename,sub_filename"
# (dataset, sub, filename_o, label, imagename): names as in the published csv
ROWS = (
    ("casme2", "sub01", "EP02_01f", 1, "sub01_EP02_01f.jpg"),
    ("casme2", "sub01", "EP19_05f", 0, "sub01_EP19_05f.jpg"),
    ("casme2", "sub01", "EP11_01", 2, "sub01_EP11_01.jpg"),
    ("casme2", "sub02", "EP09_01", 1, "sub02_EP09_01.jpg"),
    ("casme2", "sub02", "EP01_11f", 0, "sub02_EP01_11f.jpg"),
    ("smic", "s01", "s01_ne_01", 0, "s01_s1_ne_01.jpg"),
    ("smic", "s01", "s01_po_01", 1, "s01_s1_po_01.jpg"),
    ("smic", "s01", "s01_sur_01", 2, "s01_s1_sur_01.jpg"),
    ("samm", "006", "006_1_2", 0, "006_006_1_2.jpg"),
    ("samm", "006", "006_3_5", 2, "006_006_3_5.jpg"),
    ("samm", "006", "006_5_9", 1, "006_006_5_9.jpg"),
)
FLOW = Path("datasets") / "STSNet_whole_norm_u_v_os"
APEX = Path("datasets") / "combined_datasets_whole"
FOLDS = Path("datasets") / "three_norm_u_v_os"


def flow_image(label: int, seed: int) -> np.ndarray:
    """A 28 x 28 RGB (u, v, strain) image, each channel min-max stretched to 0..255 like the published ones."""
    rng = np.random.default_rng(seed)
    flow = rng.normal(0.0, 0.2, (28, 28, 3))
    flow[4 + 7 * label : 10 + 7 * label, 6:22, 0] += 2.0  # u: a rightward movement in the class's band
    flow[4 + 7 * label : 10 + 7 * label, 6:22, 1] -= 1.0
    flow[..., 2] = np.abs(flow[..., 2]) + np.abs(flow[..., 0])
    low, high = flow.min(axis=(0, 1)), flow.max(axis=(0, 1))
    return np.round(255 * (flow - low) / (high - low)).astype(np.uint8)


def apex_crop(label: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    image = rng.integers(60, 120, (224, 224, 3), dtype=np.uint8)
    image[40 + 50 * label : 80 + 50 * label, 40:180] = 220
    return image


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)), path


def build_htnet_tree(root: Path, rows=ROWS, folds: bool = True) -> Path:
    """Write the tree into `root` (csv, whole flow folder, apex crops, and with `folds` the per-fold copy)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{d},{s},{c},{label},,{image}," for d, s, c, label, image in rows]
    (root / "combined_3_class2_for_optical_flow.csv").write_text("\n".join(lines) + "\n")
    for i, (_, sub, clip, label, image) in enumerate(rows):
        write_rgb(root / FLOW / f"{sub}_{clip} .png", flow_image(label, i))
        write_rgb(root / APEX / image, apex_crop(label, i))
    if folds:
        for fold in sorted({r[1] for r in rows}):
            for _, sub, clip, label, _ in rows:
                part = "u_test" if sub == fold else "u_train"
                name = f"{sub}_{clip} .png"
                target = root / FOLDS / fold / part / str(label) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / FLOW / name, target)
    return root
