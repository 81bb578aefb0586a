"""Classic methods (LBP-TOP, Bi-WOOF + linear SVM): features on hand-made inputs, the SVM's use of the folds, and
LOSO runs through the same engine and CLI as the networks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from skimage.feature import local_binary_pattern
from typer.testing import CliRunner

import pamer.data
from _engine import CLASSES, make_cache
from pamer.classic import check_classic, classic_features, is_classic, list_classic
from pamer.classic.biwoof import biwoof_histogram, orientation_bin
from pamer.classic.lbptop import lbptop_histogram, plane_codes, uniform_table
from pamer.classic.svm import choose_c, linear_kernel, softmax, svm_scores
from pamer.cli import app
from pamer.config import SHIPPED, ConfigError, load_config
from pamer.demo.synthetic import SyntheticConfig, generate
from pamer.engine import run_loso, train_final
from pamer.engine.fold import fold_plan
from pamer.preprocess.cache import Cache
from pamer.preprocess.motion import optical_strain
from pamer.preprocess.pipeline import prepare

CONFIGS = SHIPPED / "peers"

# ---------------------------------------------------------------------------------------------------------------
# LBP-TOP features


def test_lbp_code_of_a_hand_made_patch() -> None:
    """Centre 100; right 200, up 100 (a tie sets the bit), up-right 255, all else 0.

    Neighbour p sits at angle 2 pi p / 8 counter-clockwise from the right, diagonals interpolated bilinearly:
    up-right (p = 1) = 0.707 (0.293 * 100 + 0.707 * 255) + 0.293 (0.293 * 100 + 0.707 * 200) = 198 >= 100,
    up-left (p = 3) = 29.3, down-right (p = 7) = 50: below. Bits 0, 1, 2 -> code 7.
    """
    patch = np.array([[0, 100, 255], [0, 100, 200], [0, 0, 0]], dtype=np.uint8)
    assert plane_codes(patch[None], 1, 1)[0].tolist() == [[7]]
    assert local_binary_pattern(patch, 8, 1, method="default")[1, 1] == 7  # scikit-image agrees
    table = uniform_table(8)
    # 7 = 00000111: uniform; the uniform codes below it are 0, 1, 2, 3, 4, 6 -> bin 6
    assert table[7] == 6 and table[0] == 0 and table[255] == 57
    assert table[0b101] == 58 and table.max() == 58  # two runs of ones: non-uniform, the 59th bin
    assert (table < 58).sum() == 58


def test_uniform_bins_are_scikit_images_non_rotation_invariant_uniform_patterns() -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8)
    ours = uniform_table(8)[local_binary_pattern(image, 8, 1, method="default").astype(int)]
    theirs = local_binary_pattern(image, 8, 1, method="nri_uniform").astype(int)
    pairs = set(zip(ours.ravel().tolist(), theirs.ravel().tolist(), strict=True))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # one-to-one: the same bins


@pytest.mark.parametrize("radius", [1, 1.5, 2, 3])
def test_plane_codes_equal_scikit_image_on_circles(radius: float) -> None:
    image = np.random.default_rng(1).integers(0, 256, (30, 27)).astype(np.uint8)
    image[4:12, 4:12] = 90  # flat patches: ties decide bits
    m = math.ceil(radius)
    expected = local_binary_pattern(image, 8, radius, method="default").astype(int)[m:-m, m:-m]
    np.testing.assert_array_equal(plane_codes(image[None], radius, radius)[0], expected)


def test_lbptop_codes_of_a_voxel_brightening_in_time() -> None:
    """One bright voxel (t=1, y=1, x=1) in a dark 3x3x3 clip; the same pixel was brighter one frame before.

    XY: every neighbour darker -> code 0. XT and YT (time down the rows): neighbour p = 2 (up = the previous
    frame) is brighter -> code 4; the diagonals interpolate to 0.707 * 0.293 * 200 + 0.293 * 0.293 * 100 = 50.
    """
    volume = np.zeros((3, 3, 3), dtype=np.uint8)
    volume[1, 1, 1], volume[0, 1, 1] = 100, 200
    hist = lbptop_histogram(volume, radius_xy=1, radius_t=1, blocks=1).reshape(3, 59)
    table = uniform_table(8)
    assert hist.sum(axis=1).tolist() == [1.0, 1.0, 1.0]
    assert [int(np.argmax(h)) for h in hist] == [table[0], table[4], table[4]]
    # brighter one frame after instead: p = 6 (down = the next frame) -> code 64
    volume[0, 1, 1], volume[2, 1, 1] = 0, 200
    hist = lbptop_histogram(volume, radius_xy=1, radius_t=1, blocks=1).reshape(3, 59)
    assert [int(np.argmax(h)) for h in hist] == [table[0], table[64], table[64]]


def test_lbptop_recipe_shape_and_blocks() -> None:
    clip = np.random.default_rng(2).integers(0, 256, (10, 40, 33)).astype(np.uint8)
    feature = lbptop_histogram(clip)  # R_X = R_Y = 1, R_T = 4, 8 neighbours, 5 x 5 blocks
    assert feature.shape == (5 * 5 * 3 * 59,)
    np.testing.assert_allclose(feature.reshape(75, 59).sum(axis=1), 1.0)
    # a change confined to the top-left block changes only that block's histograms
    changed = clip.copy()
    changed[:, :5, :5] = 255 - changed[:, :5, :5]
    diff = np.abs(lbptop_histogram(changed) - feature).reshape(25, 3 * 59).sum(axis=1)
    assert diff[0] > 0 and (diff[1:] == 0).all()
    with pytest.raises(ValueError, match="needs more than 8 frames, the clip has 8"):
        lbptop_histogram(clip[:8])


# ---------------------------------------------------------------------------------------------------------------
# Bi-WOOF features


def test_orientation_bins() -> None:
    u = np.array([1.0, -1.0, 0.0, 0.0, 1.0, -1.0, -1.0])
    v = np.array([0.0, 0.0, 1.0, -1.0, 1.0, 0.01, -0.01])
    # right, left (180 degrees: the first bin, with -180), down (image y grows downwards), up, down-right at 45
    # degrees, left and a little down (179.4 degrees: the last bin), left and a little up (-179.4: the first)
    assert orientation_bin(u, v).tolist() == [4, 0, 6, 2, 5, 7, 0]


def test_pure_horizontal_flow_gives_its_bin_and_the_block_weights() -> None:
    flow = np.zeros((20, 20, 3))
    flow[:10, :10, 0] = 2.0  # top-left block: rightwards, strain 0.5
    flow[:10, :10, 2] = 0.5
    flow[:10, 10:, 0] = -1.0  # top-right block: leftwards, strain 1.5
    flow[:10, 10:, 2] = 1.5
    feature = biwoof_histogram(flow, blocks=2, bins=8).reshape(4, 8)
    expected = np.zeros((4, 8))
    expected[0, 4] = 0.5  # the block's histogram sums to 1, times its mean strain
    expected[1, 0] = 1.5
    np.testing.assert_allclose(feature, expected / np.linalg.norm(expected))


def test_votes_are_weighted_by_magnitude() -> None:
    flow = np.zeros((8, 8, 3))
    flow[..., 2] = 1.0
    flow[:6, :, 0] = 1.0  # 48 pixels rightwards at 1 pixel
    flow[6:, :, 1] = 3.0  # 16 pixels downwards at 3 pixels: as many votes in all
    feature = biwoof_histogram(flow, blocks=1, bins=8)
    assert feature[4] == pytest.approx(feature[6]) and feature[4] > 0
    assert np.count_nonzero(feature) == 2


def test_a_uniform_translation_has_no_strain_and_no_feature() -> None:
    flow = np.zeros((25, 25, 3))
    flow[..., 0] = 1.5
    flow[..., 2] = optical_strain(flow[..., :2])
    assert not biwoof_histogram(flow).any()


# ---------------------------------------------------------------------------------------------------------------
# the SVM sees the training subjects only


def _separable(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    features = rng.normal(0, 1, (n, 12))
    features[np.arange(n), labels] += 4.0
    return features, labels, [f"s{i % 4}" for i in range(n)]


def test_test_clips_never_reach_the_fit_or_the_choice_of_c() -> None:
    features, labels, subjects = _separable(48)
    kernel = linear_kernel(features)
    _, train, test = fold_plan(subjects)[0]
    scores = svm_scores(kernel, labels, train, test, 3, 1.0)
    c = choose_c(kernel, labels, subjects, train, [0.001, 0.01, 1.0], 3)
    # garbage in every place a test clip could leak through: its labels, its dot products with itself
    spoiled, wrong = kernel.copy(), labels.copy()
    spoiled[np.ix_(test, test)] = np.nan
    wrong[test] = (wrong[test] + 1) % 3
    np.testing.assert_array_equal(svm_scores(spoiled, wrong, train, test, 3, 1.0), scores)
    # the choice of C reads no test row or column at all
    spoiled[test, :] = np.nan
    spoiled[:, test] = np.nan
    assert choose_c(spoiled, wrong, subjects, train, [0.001, 0.01, 1.0], 3) == c


def test_scores_predict_like_the_svm_and_softmax_keeps_the_argmax() -> None:
    from sklearn.svm import SVC

    features, labels, subjects = _separable(48, seed=3)
    features += np.random.default_rng(4).normal(0, 2, features.shape)  # overlapping classes
    _, train, test = fold_plan(subjects)[1]
    scores = svm_scores(linear_kernel(features), labels, train, test, 3, 0.5)
    svm = SVC(kernel="linear", C=0.5, break_ties=True).fit(features[train], labels[train])
    np.testing.assert_array_equal(scores.argmax(axis=1), svm.predict(features[test]))
    probs = softmax(scores)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probs.argmax(axis=1), scores.argmax(axis=1))
    # a class without training clips scores -inf and gets probability 0
    two = svm_scores(linear_kernel(features), np.minimum(labels, 1), train, test, 3, 0.5)
    assert np.isneginf(two[:, 2]).all() and (softmax(two)[:, 2] == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# through the engine


def drift_cache(subjects: int = 3, per_subject: int = 6, size: int = 24, frames: int = 10, seed: int = 0) -> Cache:
    """Noise clips whose texture drifts one pixel per frame in a class's direction (right, down, left), with the
    matching flow field and a strain of 1; each subject's clips cycle through the classes."""
    rng = np.random.default_rng(seed)
    n = subjects * per_subject
    labels = np.arange(n) % 3
    steps = {0: (0, 1), 1: (1, 0), 2: (0, -1)}
    base = rng.integers(0, 256, (n, size + 2 * frames, size + 2 * frames)).astype(np.uint8)
    clips = np.empty((n, frames, size, size), dtype=np.uint8)
    flow = np.zeros((n, size, size, 3), dtype=np.float32)
    for i, label in enumerate(labels):
        dy, dx = steps[int(label)]
        for t in range(frames):
            y, x = frames - dy * t, frames - dx * t
            clips[i, t] = base[i, y : y + size, x : x + size]
        flow[i, ..., 0], flow[i, ..., 1] = dx + rng.normal(0, 0.3, (size, size)), dy + rng.normal(0, 0.3, (size, size))
        flow[i, ..., 2] = 1.0
    onset = np.repeat(clips[:, 0, :, :, None], 3, axis=3)
    return make_cache(
        [f"sub{i // per_subject:02d}" for i in range(n)],
        labels=labels,
        size=size,
        config={"representation": "flow", "frames": frames},
        onset=onset,
        apex=onset.copy(),
        flow=flow,
        frames=clips,
    )


@pytest.fixture(scope="module")
def cache() -> Cache:
    return drift_cache()


@pytest.mark.parametrize("method", ["lbptop", "biwoof"])
def test_loso_of_a_classic_method(method: str, cache: Cache, tmp_path: Path) -> None:
    config = load_config(None, [f"model.name={method}"])
    metrics = run_loso(config, tmp_path, cache=cache, quiet=True)
    assert metrics["model"] == method and metrics["folds"] == 3 and metrics["clips"] == len(cache)
    assert metrics["protocol"] == f"LOSO, 3 folds, linear SVM on {method} features, C = 1"
    assert metrics["accuracy"] >= 0.8  # the drift directions are plain to both (chance: 1/3)
    folds = pd.concat([pd.read_csv(p) for p in sorted((tmp_path / "folds").glob("*.csv"))])
    probs = folds[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (np.array(CLASSES)[probs.argmax(axis=1)] == folds["pred"].to_numpy()).all()
    assert not any(c.startswith("pred_e") for c in folds.columns)
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["cache_config"]["frames"] == 10
    assert provenance["executor_choice"]["executor"] == "local"  # auto: the features once, in this process
    # a resumed run trains nothing and gives the same numbers
    again = run_loso(config, tmp_path, cache=cache, quiet=True)
    assert again == metrics
    assert json.loads((tmp_path / "provenance.json").read_text())["folds_trained_last_invocation"] == 0


def test_inner_loso_choice_of_c(cache: Cache, tmp_path: Path) -> None:
    config = load_config(None, ["model.name=biwoof", "model.args={c_grid: [0.01, 1, 100]}"])
    metrics = run_loso(config, tmp_path, cache=cache, quiet=True)
    assert "C chosen from [0.01, 1.0, 100.0] by an inner LOSO on the training subjects" in metrics["protocol"]
    assert metrics["accuracy"] == 1.0


def test_features_of_a_clip_do_not_depend_on_the_others(cache: Cache) -> None:
    config = load_config(None, ["model.name=lbptop"])
    alone = Cache(**{**vars(cache), "frames": cache.frames[:1], "labels": cache.labels[:1]})
    np.testing.assert_array_equal(classic_features(config, alone)[0], classic_features(config, cache)[0])


@pytest.mark.parametrize(
    ("settings", "change", "message"),
    [
        (["model.name=lbptop", "oracle=true"], {}, "oracle: true has no meaning for the classic method 'lbptop'"),
        (["model.name=lbptop", "model.args={radius: 2}"], {}, "model.args radius not an option of 'lbptop'"),
        (["model.name=biwoof", "model.args={bins: 1}"], {}, r"model.args.bins = 1 for 'biwoof': expected an integer"),
        (["model.name=biwoof", "model.args={C: -1}"], {}, "model.args.C = -1 for 'biwoof': expected a positive"),
        (["model.name=lbptop"], {"frames": None}, r"lbptop reads each clip's frames.*--clip-frames 10"),
        (["model.name=lbptop", "model.args={frames: 8}"], {}, "cache holds 10 per clip: prepare one with --clip-fr"),
        (["model.name=biwoof"], {"flow": None}, r"biwoof reads the onset -> apex flow.*--representation flow"),
        (["model.name=biwoof"], {"config": {"flow_kind": "normalised"}}, "biwoof needs metric flow"),
        (["model.name=lbptop", "model.args={blocks: 23}"], {}, "need frames of at least 25 px a side, the cache's"),
        (["model.name=biwoof", "model.args={blocks: 25}"], {}, "flow field of at least 25 px a side, the cache's"),
        (["model.name=biwoof", "model.args={c_grid: [1]}"], {"subjects": ["a"] * 9 + ["b"] * 9}, "at least 3 subj"),
        # the grid chose C, and the C given beside it was ignored without a word
        (
            ["model.name=biwoof", "model.args={C: 0.5, c_grid: [1, 10]}"],
            {},
            r"model.args.C = 0.5 for 'biwoof' is not used while model.args.c_grid = \[1, 10\] chooses C; give one",
        ),
    ],
)
def test_bad_settings_fail_before_any_fold(settings, change, message, cache: Cache, tmp_path: Path) -> None:
    bad = Cache(**{**vars(cache), **change})
    with pytest.raises(ConfigError, match=message):
        run_loso(load_config(None, settings), tmp_path / "run", cache=bad, quiet=True)
    assert not (tmp_path / "run").exists()


def test_stacked_executor_refuses_a_classic_method(cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'lbptop' is a classic method .features . SVM.: there is no network to stack"):
        run_loso(load_config(None, ["model.name=lbptop"]), tmp_path / "run", "stacked", cache=cache, quiet=True)


def test_train_refuses_a_classic_method(cache: Cache, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'lbptop' is a classic method .features . SVM.: run it with `pamer loso`"):
        train_final(load_config(None, ["model.name=lbptop"]), tmp_path, cache=cache)


def test_registry() -> None:
    assert list_classic() == ["biwoof", "lbptop"] and is_classic("lbptop") and not is_classic("pamnet")
    check_classic(load_config(None, ["model.name=biwoof", "model.args={blocks: 6, bins: 12, C: 0.5}"]))


# ---------------------------------------------------------------------------------------------------------------
# the shipped configs, end to end on the demo set


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo set (3 subjects: an inner LOSO needs two training subjects; one clip per class) prepared as both
    configs need: flow and 10 clip frames."""
    root = generate(tmp_path_factory.mktemp("set") / "data", SyntheticConfig(subjects=3, clips_per_class=1))
    index = pamer.data.read("casme2", root, "megc2019")
    out = tmp_path_factory.mktemp("cache")
    return prepare(index, out, size=64, progress=False, protocol="megc2019", representation="flow", clip_frames=10)


@pytest.mark.parametrize("method", ["lbptop", "biwoof"])
def test_shipped_config_runs_through_the_cli(method: str, demo_cache: Path, tmp_path: Path) -> None:
    recipe = yaml.safe_load((CONFIGS / f"{method}.yaml").read_text())
    assert recipe["model"]["name"] == method
    args = ["loso", str(CONFIGS / f"{method}.yaml"), "--set", f"data.cache={demo_cache}", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == method and metrics["clips"] == 9 and metrics["folds"] == 3
    assert "inner LOSO" in metrics["protocol"]
    assert f"{metrics['accuracy']:.4f}" in result.stdout
    assert {p.name for p in (tmp_path / "folds").iterdir()} == {"sub01.csv", "sub02.csv", "sub03.csv"}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("method", ["lbptop", "biwoof"])
def test_classic_methods_beat_chance_on_the_demo_set(method: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The default demo set (5 subjects, 5 clips per class, 112 px crops), each shipped recipe: pooled LOSO accuracy
    at least 0.5 against a chance of 1/3 (75 clips guessed at chance reach 0.5 with probability 0.0014).

    Measured on 2 CPU cores: LBP-TOP 0.573, Bi-WOOF 0.600.
    """
    root = tmp_path_factory.getbasetemp() / "demo-set"
    root = generate(root / "data", SyntheticConfig(subjects=5, clips_per_class=5))
    index = pamer.data.read("casme2", root, "megc2019")
    directory = prepare(
        index, root.parent / "cache", size=112, progress=False, protocol="megc2019", representation="flow",
        clip_frames=10,
    )  # fmt: skip
    config = load_config(CONFIGS / f"{method}.yaml", [f"data.cache={directory}"])
    metrics = run_loso(config, tmp_path_factory.mktemp(method), quiet=True)
    print(f"{method}: pooled LOSO accuracy {metrics['accuracy']:.3f}, UF1 {metrics['uf1']:.3f} (chance 0.333)")
    assert metrics["accuracy"] >= 0.5
