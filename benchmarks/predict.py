"""End-to-end latency of `Recognizer.predict` on one clip, on the CPU, split into decode, detect, align, model.

Usage: python benchmarks/predict.py [--photo PATH] [--model pamnet] [--repeats 5] [--threads N] [--fourcc mp4v]

The clip: a real face photo (default: matplotlib's grace_hopper.jpg) letterboxed into a 640x480 frame, with a
lip-corner pull (FACS AU6+AU12, from pamer.demo.synthetic) rising to an apex and falling back, 200 frames =
2 seconds at 100 fps, written with OpenCV to a temporary video file. The checkpoint is an untrained network
saved as `pamer train` saves one (weights do not change the time), cache size 256, input 224.

Stages (see `Prediction.timings`): decode = read every frame of the video; detect = fit the clip's one face
transform (dlib detection + 68 landmarks + levelling checks); align = warp every frame after the onset to the
crop and spot the apex; model = motion image + forward pass. The first call (dlib and torch warm-up) is not
counted; the median of the repeats is reported, with the process CPU time of a whole clip (all threads), the
steadier number when other jobs share the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

from pamer.clip import read_video
from pamer.demo import synthetic
from pamer.models import create_model
from pamer.predict import Recognizer
from pamer.preprocess.face import FaceAligner, detect_faces, landmarks

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 100, 200


def make_clip(photo: Path) -> tuple[list[np.ndarray], int]:
    """The benchmark clip (RGB frames) and its rendered apex index."""
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    scale = min(WIDTH / image.shape[1], HEIGHT / image.shape[0])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((HEIGHT, WIDTH, 3), 96, np.uint8)
    top, left = (HEIGHT - image.shape[0]) // 2, (WIDTH - image.shape[1]) // 2
    frame[top : top + image.shape[0], left : left + image.shape[1]] = image
    boxes = detect_faces(frame)
    if not boxes:
        raise SystemExit(f"no face found in {photo}")
    face = synthetic.Face(photo.stem, frame, landmarks(frame, boxes[0]))
    config = synthetic.SyntheticConfig(frames=(FRAMES, FRAMES))
    clip = synthetic.render_clip(face, synthetic.EMOTION_AUS["happiness"], np.random.default_rng(0), config)
    return clip.frames, clip.apex


def write_video(path: Path, frames: list[np.ndarray], fourcc: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {fourcc} video to {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_model(model_dir: Path, name: str) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    classes = ["negative", "positive", "surprise"]
    model = create_model(name, num_classes=len(classes))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(model_dir / "model.safetensors"))
    card = {
        "model": name,
        "model_args": {},
        "num_classes": len(classes),
        "classes": classes,
        "input_size": 224,
        "mean": [0.0, 0.0, 0.0],
        "std": [0.05, 0.05, 0.05],
        "representation": "diff",
        "preprocess": FaceAligner(size=256).config(),
        "pamer_version": "benchmark",
    }
    (model_dir / "model.json").write_text(json.dumps(card))


def main() -> None:
    import matplotlib.cbook

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photo", type=Path, default=Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    )
    parser.add_argument("--model", default="pamnet")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--fourcc", default="mp4v", help="video codec: mp4v (.mp4), MJPG, FFV1 (lossless) ...")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    frames, true_apex = make_clip(args.photo)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / ("clip.mp4" if args.fourcc == "mp4v" else "clip.avi")
        write_video(video, frames, args.fourcc)
        write_model(Path(tmp) / "model", args.model)
        recognizer = Recognizer.from_dir(Path(tmp) / "model")
        print(
            f"{args.photo.name} in {WIDTH}x{HEIGHT}, {FRAMES} frames at {FPS} fps ({args.fourcc}, "
            f"{video.stat().st_size / 1e6:.1f} MB), model {args.model} at 224, torch threads {torch.get_num_threads()}"
        )
        for label, apex in (("apex spotted", None), ("apex given", true_apex)):
            recognizer.predict(read_video(video), apex=apex)  # warm-up: dlib models, torch kernels
            runs = []
            for _ in range(args.repeats):
                start, cpu = time.perf_counter(), time.process_time()
                result = recognizer.predict(read_video(video), apex=apex)
                runs.append({**result.timings, "total": time.perf_counter() - start, "cpu": time.process_time() - cpu})
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            split = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in median.items() if k not in ("total", "cpu"))
            print(
                f"{label} (apex {result.apex}, rendered {true_apex}): wall {1000 * median['total']:.0f} ms "
                f"per clip = {split}; CPU time {1000 * median['cpu']:.0f} ms (medians of {args.repeats})"
            )


if __name__ == "__main__":
    main()
