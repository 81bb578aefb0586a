"""Face-alignment throughput of `pamer prepare`: ms per clip and clips per second, 1 core and N workers.

Clips are made of real face photos (matplotlib's Grace Hopper, and dlib's Tom Cruise and bald_guys photos from
../shared/datasets/faces when present) placed on 640 x 480 frames with faces of about 280 px, as in CASME II,
each clip tilted by a different angle; onset and apex are two JPEG files. Measured:

- per clip, in this process (wall and CPU time, the latter less sensitive to other jobs): read 2 JPEGs,
  detect + landmarks + level (with its re-detection pass) + crop both frames + the cached onset/apex landmarks
  (`pipeline.align_clip`), the fit alone, and the cached landmarks alone (`pipeline.clip_landmarks`, cache format 3);
- `prepare()` end to end (parts, progress off, final arrays and manifest) with 1 and with N worker processes;
  the N-worker time includes starting the processes and loading dlib's model in each (about 2 s).

    python benchmarks/prepare.py --clips 60 --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np

from pamer.data import DatasetIndex, Sample
from pamer.frames import read_rgb
from pamer.preprocess import pipeline, prepare
from pamer.preprocess.face import FaceAligner, detect_faces, dlib_models

FACES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"


def _face_crops() -> list[np.ndarray]:
    """Square face regions (twice the detected box) from the available photos."""
    photos = [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    photos += [FACES / name for name in ("Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg") if (FACES / name).is_file()]
    crops = []
    for path in photos:
        image = read_rgb(path)
        for left, top, right, bottom in detect_faces(image)[:3]:
            side = int(2 * max(right - left, bottom - top))
            cx, cy = int((left + right) / 2), int((top + bottom) / 2)
            padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REFLECT)
            crops.append(padded[cy + side // 2 : cy + 3 * side // 2, cx + side // 2 : cx + 3 * side // 2])
    return crops


def _make_clips(folder: Path, count: int) -> DatasetIndex:
    """`count` two-frame clips on 640 x 480 frames (face about 280 px), onset and apex as JPEG files."""
    rng = np.random.default_rng(0)
    crops = _face_crops()
    samples = []
    for i in range(count):
        face = cv2.resize(crops[i % len(crops)], (560, 560), interpolation=cv2.INTER_AREA)  # box ~280 px
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[:, 40:600] = face[40:520]
        angle = float(rng.uniform(-10, 10))
        frame = cv2.warpAffine(frame, cv2.getRotationMatrix2D((320, 240), angle, 1.0), (640, 480))
        apex = frame.copy()
        apex[150:170, 250:390] = np.clip(apex[150:170, 250:390].astype(int) + 20, 0, 255)
        clip = folder / f"clip{i:03d}"
        clip.mkdir()
        for number, image in ((1, frame), (2, apex)):
            cv2.imwrite(str(clip / f"img{number}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        samples.append(
            Sample(
                dataset="bench",
                subject=f"s{i % 5}",
                clip=clip.name,
                label="a",
                emotion="a",
                onset=1,
                apex=2,
                offset=2,
                frames=[clip / "img1.jpg", clip / "img2.jpg"],
                frame_numbers=[1, 2],
            )
        )
    return DatasetIndex("bench", ("a",), samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dlib_models()
        print(f"dlib detector + 68-point model load: {time.perf_counter() - t0:.2f} s (once per process)")
        (Path(tmp) / "clips").mkdir()
        index = _make_clips(Path(tmp) / "clips", args.clips)

        config = {"representation": "diff", **FaceAligner(size=args.size).config()}
        aligner = FaceAligner(size=args.size)
        per_clip, cpu, fit_only, passes, marks = [], [], [], [], []
        for i, sample in enumerate(index.samples):
            task = pipeline.clip_task(i, sample, aligner.max_frames)
            start, start_cpu = time.perf_counter(), time.process_time()
            _, info = pipeline.align_clip(task, config)
            per_clip.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert info["face"] == "found", sample.clip
            passes.append(info["passes"])
            assert info["landmarks"] == "onset, apex", sample.clip
            onset, apex = read_rgb(sample.onset_path), read_rgb(sample.apex_path)
            start = time.perf_counter()
            transform = aligner.fit([onset])
            fit_only.append(time.perf_counter() - start)
            start = time.perf_counter()
            pipeline.clip_landmarks(transform, onset, apex, task)
            marks.append(time.perf_counter() - start)
        ms = 1000 * statistics.median(per_clip)
        print(
            f"per clip, 1 core ({args.clips} clips, 640x480, 2 frames): median {ms:.1f} ms "
            f"(mean {1000 * statistics.mean(per_clip):.1f}; CPU time median {1000 * statistics.median(cpu):.1f}), "
            f"of which fit {1000 * statistics.median(fit_only):.1f} ms, "
            f"onset + apex landmarks {1000 * statistics.median(marks):.1f} ms; "
            f"passes {statistics.mean(passes):.2f} on average"
        )
        for workers in sorted({1, args.workers}):
            start = time.perf_counter()
            prepare(index, Path(tmp) / f"out{workers}", size=args.size, workers=workers, progress=False)
            wall = time.perf_counter() - start
            print(
                f"prepare(), {workers} worker(s): {wall:.2f} s for {args.clips} clips = "
                f"{args.clips / wall:.1f} clips/s, {1000 * wall / args.clips:.1f} ms per clip"
            )


if __name__ == "__main__":
    main()
