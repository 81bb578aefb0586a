"""`pamer prepare --clip-frames K`: each clip's aligned grey frames, onset to offset, resampled to K in time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import pamer.data
from pamer.cli import app
from pamer.config import ConfigError
from pamer.demo.synthetic import SyntheticConfig, generate
from pamer.frames import read_rgb
from pamer.preprocess.cache import CacheError, load_cache, read_manifest
from pamer.preprocess.face import FaceAligner, to_gray
from pamer.preprocess.motion import resample_needs, resample_plan, temporal_resample
from pamer.preprocess.pipeline import prepare


def test_resampling_is_linear_in_frame_time() -> None:
    # frames 10, 11 and 13 (12 is missing): grey levels 0, 40 and 100
    frames = [np.full((2, 3), v, np.uint8) for v in (0, 40, 100)]
    out = temporal_resample(frames, [10, 11, 13], 4)  # times 10, 11, 12, 13
    assert out.shape == (4, 2, 3) and out.dtype == np.uint8
    assert out[:, 0, 0].tolist() == [0, 40, 70, 100]  # 12 lies halfway between 11 and 13
    # 7 frames over 10..13: times 10, 10.5, 11, ..., 13
    assert temporal_resample(frames, [10, 11, 13], 7)[:, 0, 0].tolist() == [0, 20, 40, 55, 70, 85, 100]
    lower, upper, weight = resample_plan([10, 11, 13], 7)
    assert lower.tolist() == [0, 0, 1, 1, 1, 1, 1] and weight[1] == pytest.approx(0.5)
    # a frame the plan does not read may be absent
    assert resample_needs([0, 1, 2, 3, 4], 3) == [0, 2, 4]
    sparse = [np.full((1, 1), 10 * i, np.uint8) if i in (0, 2, 4) else None for i in range(5)]
    assert temporal_resample(sparse, [0, 1, 2, 3, 4], 3)[:, 0, 0].tolist() == [0, 20, 40]
    with pytest.raises(ValueError, match="increasing"):
        resample_plan([3, 2], 4)
    with pytest.raises(ValueError, match="at least 2"):
        resample_plan([1, 2], 1)


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory):
    root = generate(tmp_path_factory.mktemp("set") / "data", SyntheticConfig(subjects=2, clips_per_class=1))
    return pamer.data.read("casme2", root, "megc2019")


def test_cache_holds_the_clip_frames(demo_index, tmp_path: Path) -> None:
    directory = prepare(demo_index, tmp_path, size=48, progress=False, protocol="megc2019", clip_frames=5)
    cache = load_cache(directory)
    assert cache.frames.shape == (len(demo_index), 5, 48, 48) and cache.frames.dtype == np.uint8
    assert cache.config["frames"] == 5
    sample = demo_index.samples[0]
    assert sample.offset > sample.apex > sample.onset  # the clip runs past the apex
    # the same one transform as the onset/apex crops, applied to the grey frames, resampled over onset..offset
    transform = FaceAligner(size=48).fit([read_rgb(sample.onset_path), read_rgb(sample.apex_path)])
    np.testing.assert_array_equal(transform.apply(read_rgb(sample.onset_path)), cache.onset[0])
    numbers = [n for n in sample.frame_numbers if sample.onset <= n <= sample.offset]
    grey = [transform.apply(to_gray(read_rgb(sample.frame(n)))) for n in numbers]
    np.testing.assert_array_equal(cache.frames[0], temporal_resample(grey, numbers, 5))
    np.testing.assert_array_equal(cache.frames[0, 0], grey[0])
    np.testing.assert_array_equal(cache.frames[0, -1], grey[-1])  # the offset frame

    # without clip frames: no frames, and the configuration (so the cache key) of a cache made before them
    plain = load_cache(prepare(demo_index, tmp_path, size=48, progress=False, protocol="megc2019"))
    assert plain.frames is None and "frames" not in plain.config
    assert len(list(tmp_path.iterdir())) == 2


def test_unreadable_middle_frame_is_left_out(demo_index, tmp_path: Path) -> None:
    sample = demo_index.samples[1]
    numbers = [n for n in sample.frame_numbers if sample.onset <= n <= sample.offset]
    broken = numbers[len(numbers) // 2]
    assert broken not in (sample.onset, sample.apex) and numbers.index(broken) in resample_needs(numbers, 3)
    small = pamer.data.DatasetIndex("casme2", demo_index.classes, [sample])
    path = sample.frame(broken)
    good = path.read_bytes()
    try:
        path.write_bytes(b"\xff\xd8\xff\xe0 cut off")
        directory = prepare(small, tmp_path, size=32, progress=False, clip_frames=3)
    finally:
        path.write_bytes(good)
    (row,) = read_manifest(directory)
    assert row["status"] == "cached"
    assert path.name in row["problems"] and "left out of the clip's frames" in row["problems"]
    frames = load_cache(directory).frames
    assert frames.shape == (1, 3, 32, 32)
    # the resampling bridges the broken frame: as if the clip never had it
    transform = FaceAligner(size=32).fit([read_rgb(sample.onset_path), read_rgb(sample.apex_path)])
    kept = [n for n in numbers if n != broken]
    grey = [transform.apply(to_gray(read_rgb(sample.frame(n)))) for n in kept]
    np.testing.assert_array_equal(frames[0], temporal_resample(grey, kept, 3))


def test_an_edited_offset_makes_a_new_clip_frames_cache(demo_index, tmp_path: Path) -> None:
    # the clip frames run from onset to offset: a sheet whose offset cell was edited must not get the old cache
    sample = demo_index.samples[0]
    small = pamer.data.DatasetIndex("casme2", demo_index.classes, [sample])
    first = prepare(small, tmp_path, size=32, progress=False, clip_frames=3)
    shorter = replace(sample, offset=sample.apex)
    assert shorter.offset < sample.offset
    second = prepare(
        pamer.data.DatasetIndex("casme2", demo_index.classes, [shorter]),
        tmp_path,
        size=32,
        progress=False,
        clip_frames=3,
    )
    assert second != first
    assert not np.array_equal(load_cache(second).frames, load_cache(first).frames)
    # without clip frames the offset is not read, and the key stays that of caches made before it was keyed
    plain = prepare(small, tmp_path, size=32, progress=False)
    assert (
        prepare(pamer.data.DatasetIndex("casme2", demo_index.classes, [shorter]), tmp_path, size=32, progress=False)
        == plain
    )


def test_bad_clip_frames_and_damaged_frames_array(demo_index, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="clip_frames must be 0 .none. or at least 2, got 1"):
        prepare(demo_index, tmp_path, clip_frames=1)
    small = pamer.data.DatasetIndex("casme2", demo_index.classes, demo_index.samples[:1])
    directory = prepare(small, tmp_path, size=32, progress=False, clip_frames=4)
    from safetensors.numpy import load_file, save_file

    arrays = load_file(directory / "arrays.safetensors")
    save_file({**arrays, "frames": arrays["frames"][:, :3]}, directory / "arrays.safetensors")
    with pytest.raises(CacheError, match=r"frames should be \(1, 4, 32, 32\), found \(1, 3, 32, 32\)"):
        load_cache(directory)


def test_cli_clip_frames(demo_index, tmp_path: Path) -> None:
    root = demo_index.samples[0].frames[0].parents[2]
    runner = CliRunner()
    args = ["prepare", "casme2", "--root", str(root), "--protocol", "megc2019", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--size", "32", "--clip-frames", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    directory = Path(result.stdout.strip().splitlines()[-1])
    assert load_cache(directory).frames.shape == (len(demo_index), 3, 32, 32)
    bad = runner.invoke(app, [*args, "--clip-frames", "1"])
    assert bad.exit_code == 2 and "clip_frames must be 0 (none) or at least 2" in bad.stderr
    assert "Traceback" not in bad.output
