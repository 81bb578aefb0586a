"""Spotting (`pamer.spot`): signal steps by hand, rendered expressions on a real face found, streaming memory, and
`pamer spot` on the real videos in ../shared/datasets/videos."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import pamer
from _spotting import Event, expression_frames, write_variable_rate_mp4, write_video
from pamer.cli import app
from pamer.clip import read_video
from pamer.spot import Interval, SpotError, spot, spot_video
from pamer.spot import spotter as spotter_module
from pamer.spot.peaks import Found, find_intervals, keep_lengths, lowpass, merge
from pamer.spot.source import open_source
from pamer.spot.spotter import next_window_start

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "videos"
runner = CliRunner()

# a brow raise of 0.43 s (13 frames at 30 fps: a micro-expression) and a lip-corner pull of 1.2 s (a macro one)
MICRO = Event(40, 46, 52, ("1", "2"), 8.0)
MACRO = Event(90, 105, 126, ("12",), 12.0)


@pytest.fixture(scope="module")
def videos_dir() -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(f"real face videos not found at {VIDEOS} (../shared is absent outside CI)")
    return VIDEOS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """150 frames (5 s at 30 fps) of a real face with a drifting, turning head: with the two events, and without."""
    work = tmp_path_factory.mktemp("spot")
    return {
        "events": write_video(work / "events.avi", expression_frames(150, (MICRO, MACRO))),
        "still": write_video(work / "still.avi", expression_frames(150, ())),
    }


# ------------------------------------------------------------------------------------------- signal steps


def test_lowpass_keeps_slow_motion_and_removes_fast_jitter() -> None:
    fps = 30.0
    t = np.arange(300) / fps
    slow, fast = np.sin(2 * np.pi * 0.5 * t), 0.5 * np.sin(2 * np.pi * 8 * t)
    out = lowpass(slow + fast, fps)
    assert np.abs(out - slow)[30:-30].max() < 0.05


def test_a_bump_above_both_thresholds_is_one_interval_bracketing_it() -> None:
    fps = 30.0
    signal = np.zeros(200)
    signal[80:101] = 4.0 * np.hanning(21)  # a 0.7 s movement peaking at 4 px on frame 90
    found = find_intervals(signal, fps, local_px=2.0)
    assert len(found) == 1
    f = found[0]
    assert 85 <= f.apex <= 95
    assert 75 <= f.onset < 88 and 92 < f.offset <= 105
    assert f.peak == pytest.approx(lowpass(signal, fps).max() - min(lowpass(signal, fps)[[f.onset, f.offset]]))


def test_a_bump_below_the_local_threshold_is_nothing() -> None:
    signal = np.zeros(200)
    signal[80:101] = 1.8 * np.hanning(21)  # rises 1.8 px: above no threshold once filtered
    assert find_intervals(signal, 30.0, local_px=2.0) == []


def test_a_slow_ramp_is_not_a_peak() -> None:
    # 6 px over the whole window, but never more than 2 px above the minimum within a second of any frame
    signal = np.linspace(0, 6, 200)
    assert find_intervals(signal, 30.0, local_px=2.0) == []


def test_merge_joins_overlaps_beyond_a_fifth_of_the_shorter() -> None:
    a = Found(10, 29, 20, 3.0)  # 20 frames
    b = Found(25, 44, 35, 5.0)  # overlaps a by 5 frames: a quarter of the shorter (> 0.2)
    c = Found(42, 61, 50, 1.0)  # overlaps the union 25..44 by 3 of 20 frames: 0.15 (< 0.2)
    merged = merge([c, a, b])
    assert merged == [Found(10, 44, 35, 5.0), c]


def test_keep_lengths_drops_too_short_and_too_long() -> None:
    fps = 30.0
    found = [Found(0, 11, 5, 1.0), Found(0, 12, 5, 1.0), Found(0, 200, 5, 1.0), Found(0, 201, 5, 1.0)]
    assert keep_lengths(found, fps) == [found[1], found[2]]


@pytest.mark.parametrize(
    ("onset", "offset", "start"),
    [
        (20, 60, 100),  # nothing spans frame 100: the next window starts there
        (90, 130, 150),  # ends before 150: start 20 frames after it
        (60, 160, 40),  # starts after 50: start 20 frames before it
        (30, 170, 180),  # neither: 10 frames after it
        (10, 195, 199),  # ... at most 189 + 10
    ],
)
def test_the_next_window_never_starts_inside_an_interval(onset: int, offset: int, start: int) -> None:
    # CZP-1's rule for 200-frame windows moved by 100 at 30 fps
    found = [Found(onset, offset, (onset + offset) // 2, 3.0)]
    assert next_window_start(found, 200, 100, 30.0) == start


# ---------------------------------------------------------------------------------------- rendered videos


def _overlap(interval: Interval, event: Event) -> float:
    common = min(interval.offset, event.offset) - max(interval.onset, event.onset) + 1
    return max(common, 0) / (event.offset - event.onset + 1)


def test_rendered_micro_and_macro_expressions_are_found(rendered: dict[str, Path]) -> None:
    result = spot_video(rendered["events"])
    assert result.fps == 30.0 and result.frames == 150 and result.stride == 1
    found = result.intervals
    micro = [i for i in found if _overlap(i, MICRO) > 0.5]
    macro = [i for i in found if _overlap(i, MACRO) > 0.5]
    assert len(micro) == 1 and len(macro) == 1, found
    assert MICRO.onset - 6 <= micro[0].apex <= MICRO.offset + 6
    assert MACRO.onset <= macro[0].apex <= MACRO.offset
    assert macro[0].type == "macro"
    assert len(found) == 2, f"spotted motion that was never rendered: {found}"
    # registration removes the drifting head: little motion is left at the nose
    assert np.nanmedian(result.residual) < 0.5
    assert set(result.thumbnails) == {i.apex for i in found}


def test_a_still_face_with_a_moving_head_gives_nothing_and_progress_counts_frames(rendered: dict[str, Path]) -> None:
    seen = []
    result = spot_video(open_source(rendered["still"]), progress=seen.append)
    assert result.intervals == []
    assert seen == list(range(1, 151))


def test_pamer_spot_is_callable_as_pamer_spot_spot(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(pamer.spot, "spot", lambda *args, **kwargs: calls.append((args, kwargs)) or [])
    assert pamer.spot("interview.mp4", fps=25.0) == []
    assert calls == [(("interview.mp4",), {"fps": 25.0})]
    assert spot is spotter_module.spot  # the function itself, exported from pamer.spot


def test_memory_does_not_grow_with_the_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # short windows, so that several open and close in a short test; frames held would cost 170 kB each
    monkeypatch.setattr(spotter_module, "WINDOW", 20)
    monkeypatch.setattr(spotter_module, "STEP", 10)
    frames = expression_frames(40, ())
    peaks = {}
    for n in (40, 160):
        video = write_video(tmp_path / f"{n}.avi", [frames[i % 40] for i in range(n)])
        tracemalloc.start()
        result = spot_video(video, size=128)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.frames == n and result.face_seen
    assert peaks[160] - peaks[40] < 2_000_000, peaks  # 120 more frames held would be 20 MB


def test_a_high_frame_rate_is_subsampled(tmp_path: Path) -> None:
    frames = expression_frames(40, (), drift_px=0, drift_deg=0)
    video = write_video(tmp_path / "fast.avi", frames, fps=200.0)
    result = spot_video(video)
    assert result.stride == 7  # 200 fps read at about 30
    assert list(result.numbers) == list(range(0, 40, 7))


def test_bad_sources_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SpotError, match="does not exist"):
        spot_video(tmp_path / "missing.mp4")
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(SpotError, match="holds no image files"):
        spot_video(folder, fps=30)
    (folder / "img1.png").write_bytes(b"")
    with pytest.raises(SpotError, match="give its frame rate with --fps"):
        spot_video(folder)
    with pytest.raises(SpotError, match="positive number"):
        spot_video(folder, fps=-1)
    # one frame of the folder (OpenCV read it as a video of one frame at 25 fps: "no expression found")
    cv2.imwrite(str(folder / "img1.png"), np.full((48, 64, 3), 100, np.uint8))
    with pytest.raises(SpotError, match=f"img1.png is one image, not a video: give the folder .*\\({folder}\\)"):
        spot_video(folder / "img1.png")


def test_a_truncated_video_is_spotted_with_a_warning_naming_the_frames_not_read(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    data = rendered["still"].read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])  # the AVI header still states 150 frames
    result = spot_video(truncated)
    assert 0 < result.frames < 150 and result.stated_frames == 150
    (line,) = [m for m in result.messages() if "could be decoded" in m]
    assert f"states 150 frames but only its first {result.frames}" in line and f"{result.frames}-149" in line
    with pytest.warns(UserWarning, match="truncated or damaged"):
        spot(truncated)
    whole = spot_video(rendered["still"])
    assert whole.frames == whole.stated_frames == 150
    assert not [m for m in whole.messages() if "could be decoded" in m]


def test_a_video_of_variable_frame_rate_is_named(tmp_path: Path) -> None:
    # 30 frames at 30 fps, then 30 at 15 (a phone's recording, two joined clips): OpenCV states the average, 20 fps,
    # so frame 30 (at 1.0 s) was put at 1.5 s without a word, and every duration was counted at 20 fps
    frames = [np.full((48, 64, 3), 60 + 2 * i, np.uint8) for i in range(60)]
    video = write_variable_rate_mp4(tmp_path / "joined.mp4", frames, [(30, 512), (30, 1024)])
    result = spot_video(video)
    assert result.fps == 20 and result.frames == 60
    assert result.clock is not None and result.clock[0] == 30 and result.clock[1] == pytest.approx(1.0)
    (line,) = [m for m in result.messages() if "variable frame rate" in m]
    assert f"video {video} does not run at its 20 fps throughout" in line
    assert "frame 30 is at 1.00 s by its timestamps, not 1.50 s" in line and "constant frame rate" in line
    # a rate given by the caller (a slow-motion video's real one) is the caller's; a constant rate is not named
    assert spot_video(open_source(video, fps=30)).clock is None
    assert spot_video(write_variable_rate_mp4(tmp_path / "constant.mp4", frames, [(60, 512)])).clock is None


def test_frames_missing_from_a_folder_are_named_and_no_interval_spans_them(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    # the rendered micro- (40-52) and macro-expression (90-126), with frames 70-79 left out of the folder
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, frame in enumerate(read_video(rendered["events"]).frames):
        if not 70 <= number <= 79:
            cv2.imwrite(str(folder / f"img{number}.bmp"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    result = spot_video(folder, fps=30)
    assert result.frames == 140 and [(m.first, m.last) for m in result.missing] == [(70, 79)]
    assert "frames 70-79 are not in" in " ".join(result.messages()) and "jump from 69 to 80" in result.messages()[0]
    assert not [i for i in result.intervals if i.onset < 70 and i.offset > 79]
    types = {(i.type, i.offset < 70) for i in result.intervals}
    assert ("micro", True) in types and ("macro", False) in types  # each side still spotted on its own


def test_the_timeline_spans_a_frame_folder_numbered_from_1000_with_a_jump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # image1000..image1149 at 30 fps without 1070-1079: intervals are drawn at 33.3-38.3 s, so the axis must show
    # those seconds (it showed 0-4.7 s, an empty plot), up to the last frame's end even past the jump
    from matplotlib.figure import Figure

    from pamer.spot.regions import REGIONS
    from pamer.spot.spotter import FaceGap, SpotResult
    from pamer.spot.timeline import plot_timeline

    numbers = np.array([n for n in range(1000, 1150) if not 1070 <= n <= 1079])
    intervals = [Interval("f", 1039, 1053, "micro", 1046, 2.6), Interval("f", 1094, 1119, "macro", 1106, 6.2)]
    signals = np.zeros((len(numbers), len(REGIONS)))
    result = SpotResult(
        "f",
        "f",
        30.0,
        1,
        len(numbers),
        len(numbers),
        intervals,
        numbers,
        signals,
        np.zeros(len(numbers)),
        [],
        missing=[FaceGap(1070, 1079)],
    )
    spans = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: spans.append(fig.axes[0].get_xlim()))
    plot_timeline(result, tmp_path / "timeline.png")
    (span,) = spans
    assert span == pytest.approx((1000 / 30, 1150 / 30))


def test_frames_without_a_face_are_not_joined_across_frames_missing_from_a_folder(tmp_path: Path) -> None:
    # no face in img0-9 nor img20-29, no img10-19, a face in img30-39: "no face in frames 0-29" named (and hatched)
    # frames that are not in the folder
    faces = expression_frames(10, (), drift_px=0, drift_deg=0)
    blank = np.full_like(faces[0], 90)
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in [*range(10), *range(20, 40)]:
        frame = faces[number % 10] if number >= 30 else blank
        cv2.imwrite(str(folder / f"img{number}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    result = spot_video(folder, fps=30)
    assert result.face_seen and [(m.first, m.last) for m in result.missing] == [(10, 19)]
    assert [(g.first, g.last) for g in result.gaps] == [(0, 9), (20, 29)]
    assert "no face in frames 0-9 (0.0-0.3 s)" in " ".join(result.messages())


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_spot_writes_the_table_csv_json_and_timeline(rendered: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["spot", str(rendered["events"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "micro" in result.stdout and "macro" in result.stdout
    with (out / "intervals.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["video", "onset", "offset", "type", "apex", "peak", "onset_s", "apex_s", "offset_s"]
    assert {r[3] for r in rows[1:]} <= {"micro", "macro"} and len(rows) == 3
    summary = json.loads((out / "spot.json").read_text())
    assert [i["onset"] for i in summary["intervals"]] == [int(r[1]) for r in rows[1:]]
    assert (out / "timeline.png").stat().st_size > 10_000


def test_cli_spot_dispatches_a_video_to_the_default_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.mp4")
    plain, named = (runner.invoke(app, args) for args in (["spot", missing], ["spot", "video", missing]))
    assert plain.exit_code == named.exit_code == 2
    assert "does not exist" in plain.output and plain.output == named.output
    assert "video" in runner.invoke(app, ["spot", "--help"]).output


def test_cli_spot_refuses_a_folder_without_fps(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "img1.png").write_bytes(b"")
    result = runner.invoke(app, ["spot", str(folder)])
    assert result.exit_code == 2
    assert "give its frame rate with --fps" in result.output


def test_cli_spot_names_a_folder_given_as_dot_by_its_own_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `cd frames && pamer spot . --fps 30 --out ../out` named the video "" in intervals.csv and spot.json, a file
    # that `pamer spot score` then refused ("the video is empty")
    folder = tmp_path / "15_0101disgustingteeth"
    folder.mkdir()
    for n in (1, 2, 3):
        cv2.imwrite(str(folder / f"img{n}.png"), np.full((48, 64, 3), 100, np.uint8))
    monkeypatch.chdir(folder)
    result = runner.invoke(app, ["spot", ".", "--fps", "30", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "spot.json").read_text())["video"] == "15_0101disgustingteeth"
    assert "15_0101disgustingteeth: 0 micro" in result.stdout
    assert open_source(".", 30).name == open_source(folder, 30).name == "15_0101disgustingteeth"
    (folder / "faces").mkdir()
    monkeypatch.chdir(folder / "faces")
    assert open_source("..", 30).name == "15_0101disgustingteeth"


# ------------------------------------------------------------------------------------------- real videos


@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov", "no_face.mp4"])
def test_cli_spot_on_the_real_videos(videos_dir: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["spot", str(videos_dir / name), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for file in ("intervals.csv", "spot.json", "timeline.png"):
        assert (out / file).is_file()
    summary = json.loads((out / "spot.json").read_text())
    shortfall = [w for w in summary["warnings"] if "could be decoded" in w]
    if name == "no_face.mp4":
        # its header states 98 frames (the README's count) and OpenCV decodes fewer: said, with the frames not read
        assert summary["frames"] < 98 and len(shortfall) == 1 and f"frames {summary['frames']}-97 were" in shortfall[0]
    else:
        assert shortfall == [] and summary["frames"] == {"single_face.mp4": 72, "face_noface.mov": 169}[name]
    # face_noface.mov joins a clip at 30 fps to one at 24 and states 26.4 fps: the frame where they meet is named
    variable = [w for w in summary["warnings"] if "variable frame rate" in w]
    assert len(variable) == (name == "face_noface.mov")
    if name == "no_face.mp4":
        assert "no face found" in result.output
        assert not summary["face_seen"] and summary["intervals"] == []
    elif name == "face_noface.mov":
        # the face until about 2.7 s, then a cartoon: said so, and what was found before is kept
        assert "no face in frames" in result.output
        (gap,) = summary["gaps"]
        assert 60 <= gap["first"] <= 85 and gap["last"] == summary["frames"] - 1
        assert summary["intervals"] and all(i["offset"] < gap["first"] for i in summary["intervals"])
    else:
        assert summary["face_seen"] and summary["gaps"] == []
        assert summary["median_residual_px"] < 2.0


def test_cli_spot_warns_of_a_truncated_real_video(videos_dir: Path, tmp_path: Path) -> None:
    # the first 300 kB of the Pexels clip: its header (at the front of this MP4) states 472 frames, 79 decode
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((videos_dir / "WolfgangLanger_Pexels.mp4").read_bytes()[:300_000])
    out = tmp_path / "out"
    result = runner.invoke(app, ["spot", str(truncated), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "spot.json").read_text())
    read = summary["frames"]
    assert 0 < read < 472
    warning = f"states 472 frames but only its first {read} could be decoded"
    assert warning in " ".join(result.stderr.split())
    assert any(warning in line for line in summary["warnings"])


@pytest.mark.slow
def test_cli_spot_on_the_long_real_video(videos_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["spot", str(videos_dir / "WolfgangLanger_Pexels.mp4"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "spot.json").read_text())
    assert summary["face_seen"] and summary["frames"] == 472
