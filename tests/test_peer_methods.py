"""Dual-ATME and FGRMER, the peers that declare their own inputs, loss or fold statistics: layer shapes at the
published sizes, parameter counts against the authors' code (worked from their layer definitions), gradients, the
HARS image and landmark patches, the AU graph of the training fold, the losses, and a LOSO run of the shipped
configs on a tiny in-memory cache placed in the paper's Table 2 by `pamer compare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _engine import make_cache
from _models import layer_shapes
from pamer.config import SHIPPED, load_config
from pamer.data.labels import CASME2_5CLASS
from pamer.engine.fold import fold_arguments, fold_plan
from pamer.engine.inputs import network_inputs
from pamer.engine.loso import run_loso
from pamer.models import ModelConfigError, count_parameters, create_model, model_input_size, model_method
from pamer.models.peers import METHOD_NAMES
from pamer.models.peers.dual_atme import FIXED_BOXES, dual_atme_loss, focal_loss, hars_images
from pamer.models.peers.fgrmer import AUS, au_adjacency, fgrmer_fold_args, landmark_patches
from pamer.report.compare import compare_tables

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = SHIPPED / "peers"


def test_registered_with_their_declarations() -> None:
    assert set(METHOD_NAMES) == {"dual_atme", "fgrmer"}
    assert model_input_size("dual_atme") == 28 and model_input_size("fgrmer") == 128
    atme, fgr = model_method("dual_atme"), model_method("fgrmer")
    assert atme.input_shapes == ((3, 28, 28), (3, 28, 28)) and atme.fold_args is None
    assert atme.loss is dual_atme_loss and atme.what() == "its own inputs and its own loss"
    assert fgr.input_shapes == ((30, 7, 7),) and fgr.fold_args is not None
    assert fgr.what() == "its own inputs and statistics of the training fold"


# ---- layer-by-layer shapes at the published sizes (batch 2, 5 classes) ----------------------------------------

BRANCH = {
    "0.path1": (2, 6, 28, 28),
    "0.path3": (2, 6, 28, 28),
    "0.path5": (2, 6, 28, 28),
    "0.path_pool": (2, 6, 28, 28),
    "0": (2, 24, 28, 28),
    "1": (2, 24, 14, 14),
    "2.path1": (2, 12, 14, 14),
    "2": (2, 48, 14, 14),
    "3": (2, 48, 7, 7),
}
SHAPES = {
    "dual_atme": {
        **{f"face.{k}": v for k, v in BRANCH.items()},
        **{f"hars.{k}": v for k, v in BRANCH.items()},
        "cbam": (2, 48, 7, 7),
        "fc": (2, 1024),
        "head": (2, 5),
    },
    "fgrmer": {
        "dwconv": (2, 30, 7, 7),
        **{f"eyebrow.{i}": (2, 10, 49) for i in range(6)},
        **{f"mouth.{i}": (2, 20, 49) for i in range(6)},
        "eyebrow_head": (2, 160),
        "mouth_head": (2, 160),
        "graph": (9, 160),
        "norm": (2, 9),
        "head": (2, 5),
    },
}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_layer_shapes_at_the_published_sizes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    xs = [torch.randn(2, *shape) for shape in model_method(name).input_shapes]
    seen, features, logits, maps = layer_shapes(model, SHAPES[name], *xs)
    assert seen == SHAPES[name]
    assert features.shape == (2, model.num_features) and logits.shape == (2, 5) and maps == []


# ---- parameter counts against the authors' code --------------------------------------------------------------


def conv(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def atme_inception(c_in: int, out: int) -> int:
    """Me_Model_att.Inception: conv + BN (+ ReLU) everywhere; the 3x3 and 5x5 paths reduce to 6 channels first."""
    branch1 = conv(c_in, out, 1) + bn(out)
    branch3 = conv(c_in, 6, 1) + bn(6) + conv(6, out, 3) + bn(out)
    branch5 = conv(c_in, 6, 1) + bn(6) + conv(6, out, 5) + bn(out)
    pool = conv(c_in, out, 1) + bn(out)
    return branch1 + branch3 + branch5 + pool


def authors_dual_atme(c: int) -> int:
    """MEROIInception: Inception1_1/1_2 and 2_1/2_2, one CBAM(48) (channel MLP 48 -> 3 -> 48, a 3x3 conv 2 -> 1),
    fc = Linear(7*7*48*2, 1024) + BatchNorm1d + ReLU + Dropout + Linear(1024, c)."""
    branches = 2 * (atme_inception(3, 6) + atme_inception(24, 12))
    cbam = linear(48, 48 // 16) + linear(48 // 16, 48) + conv(2, 1, 3)
    return branches + cbam + linear(7 * 7 * 48 * 2, 1024) + bn(1024) + linear(1024, c)


def authors_fgrmer(c: int) -> int:
    """NetworkModel: depthwise Conv2d(30, 30, 3, groups=30) + BatchNorm2d(30); 2 x 6 EncoderLayer(49, 128, 8 heads,
    d_k = d_v = 16): w_qs/w_ks/w_vs 49 -> 128 and fc 128 -> 49 without bias, LayerNorm, FFN 49 -> 128 -> 49,
    LayerNorm; linear1 490 -> 320, linear2 980 -> 320, linear3/linear4 320 -> 160, linear5 9 -> c; Embedding(9, 40),
    gc1 40 -> 80 and gc2 80 -> 160 without bias, the adjacency A (9 x 9, a Parameter), LayerNorm(9)."""
    encoder_layer = 4 * linear(49, 8 * 16, bias=False) + 2 * 49 + linear(49, 128) + linear(128, 49) + 2 * 49
    total = conv(30, 30, 3, groups=30) + bn(30) + 12 * encoder_layer
    total += linear(490, 320) + linear(980, 320) + 2 * linear(320, 160) + linear(9, c)
    return total + 9 * 40 + 40 * 80 + 80 * 160 + 9 * 9 + 2 * 9


@pytest.mark.parametrize("classes", [3, 5])
def test_parameter_counts_match_the_authors_code(classes: int) -> None:
    atme = count_parameters(create_model("dual_atme", num_classes=classes))
    assert atme == authors_dual_atme(classes)  # the same graph (hars_attention shares the one CBAM: no weights)
    assert count_parameters(create_model("dual_atme", num_classes=classes, hars_attention=True)) == atme
    # the adjacency is a buffer here (theirs a Parameter that never gets a gradient): 81 values fewer
    assert count_parameters(create_model("fgrmer", num_classes=classes)) == authors_fgrmer(classes) - 81


def test_parameter_counts_by_hand() -> None:
    # worked: Inception(3, 6) 1404, Inception(24, 12) 3492; CBAM 147 + 192 + 19; fc 4 817 920 + 2048 + 3075
    assert authors_dual_atme(3) == 2 * (1404 + 3492) + 358 + 4_817_920 + 2048 + 3075 == 4_833_193
    # worked: encoder layer 25 088 + 98 + 6400 + 6321 + 98 = 38 005
    assert authors_fgrmer(3) == 360 + 12 * 38_005 + 157_120 + 313_920 + 2 * 51_360 + 30 + 360 + 16_000 + 81 + 18


# ---- gradients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).train()
    xs = [torch.randn(4, *shape) for shape in model_method(name).input_shapes]
    y = torch.tensor([0, 1, 2, 1])
    loss, logits = model_method(name).loss(model, xs, y, None)
    assert logits.shape == (4, 3)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname  # fgrmer's first encoder layers too: the layers are chained


def test_wrong_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"dual_atme takes two \(B, 3, 28, 28\) batches.*\(2, 3, 32, 32\)"):
        create_model("dual_atme")(torch.randn(2, 3, 28, 28), torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"fgrmer takes a \(B, 30, 7, 7\) batch of landmark patches.*\(2, 3, 28, 28\)"):
        create_model("fgrmer")(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="au_fallback 'mean'; expected one of identity"):
        create_model("fgrmer", au_fallback="mean")


# ---- Dual-ATME: HARS image, attention option, loss -----------------------------------------------------------


def _face_points(scale: float = 1.0) -> np.ndarray:
    """68 points of a 32-pixel crop: brows and eyes at rows 6-12, mouth at rows 20-25 (x, y)."""
    pts = np.full((68, 2), 16.0)
    pts[17:22] = np.c_[np.linspace(5, 12, 5), np.full(5, 6)]  # subject's right brow (image left)
    pts[22:27] = np.c_[np.linspace(20, 27, 5), np.full(5, 6)]
    pts[36:42] = np.c_[np.linspace(6, 12, 6), np.full(6, 11)]
    pts[42:48] = np.c_[np.linspace(20, 26, 6), np.full(6, 11)]
    pts[48:68] = np.c_[np.linspace(11, 21, 20), 20 + 5 * np.abs(np.sin(np.linspace(0, np.pi, 20)))]
    return pts * scale


def test_hars_joins_eye_regions_above_the_mouth() -> None:
    # motion at twice the crop's side: 1 in the upper-left quarter, 2 upper-right, 3 in the lower half
    motion = torch.zeros(2, 3, 64, 64)
    motion[:, :, :32, :32], motion[:, :, :32, 32:], motion[:, :, 32:] = 1.0, 2.0, 3.0
    landmarks = np.full((2, 2, 68, 2), np.nan, dtype=np.float32)
    landmarks[0, 0] = _face_points()  # clip 0: onset landmarks; clip 1: none (the fixed boxes)
    out = hars_images(motion, landmarks, crop_side=32)
    assert out.shape == (2, 3, 28, 28)
    for clip in range(2):
        torch.testing.assert_close(out[clip, :, :14, :14], torch.full((3, 14, 14), 1.0))
        torch.testing.assert_close(out[clip, :, :14, 14:], torch.full((3, 14, 14), 2.0))
        torch.testing.assert_close(out[clip, :, 14:], torch.full((3, 14, 28), 3.0))
    assert FIXED_BOXES[2][0] > 0.5  # the fixed mouth box lies in the lower half, as the landmark one does


def test_hars_follows_the_landmarks() -> None:
    # a ramp along x: the right-eye region (image left) must hold smaller values than the left-eye region
    motion = torch.arange(64.0).expand(1, 3, 64, 64).clone()
    landmarks = np.full((1, 2, 68, 2), np.nan, dtype=np.float32)
    landmarks[0, 1] = _face_points()  # apex landmarks only: used when the onset has none
    out = hars_images(motion, landmarks, crop_side=32)[0, 0]
    right = 2 * (_face_points()[[*range(17, 22), *range(36, 42)], 0])  # x in the 64-pixel motion
    pad = 0.05 * 64 + 1  # the box's margin, and its rounding to whole pixels
    assert right.min() - pad <= out[:14, :14].min() and out[:14, :14].max() <= right.max() + pad
    assert out[:14, 14:].mean() > out[:14, :14].mean() + 10


def test_hars_attention_is_off_by_default_and_the_code_shares_one_cbam() -> None:
    torch.manual_seed(0)
    face, hars = torch.randn(3, 3, 28, 28), torch.randn(3, 3, 28, 28)
    for shared in (False, True):
        model = create_model("dual_atme", hars_attention=shared).eval()
        with torch.no_grad():
            a0, b0 = model.branches(face, hars)
            model.cbam.conv.bias.add_(1.0)
            a1, b1 = model.branches(face, hars)
        assert not torch.equal(a0, a1)
        assert torch.equal(b0, b1) != shared


def test_focal_loss_matches_its_formula() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)[torch.arange(2), y]
    torch.testing.assert_close(focal_loss(logits, y), (-((1 - p) ** 2) * p.log()).mean())
    torch.testing.assert_close(focal_loss(logits, y, gamma=0.0), F.cross_entropy(logits, y))
    alpha = torch.tensor([2.0, 1.0, 0.5])
    torch.testing.assert_close(focal_loss(logits, y, alpha=alpha), (-alpha[y] * (1 - p) ** 2 * p.log()).mean())


def test_dual_atme_loss_adds_the_similarity_term() -> None:
    torch.manual_seed(0)
    model = create_model("dual_atme", num_classes=3).eval()
    face, hars, y = torch.randn(3, 3, 28, 28), torch.randn(3, 3, 28, 28), torch.tensor([0, 1, 2])
    with torch.no_grad():
        loss, logits = dual_atme_loss(model, [face, hars], y, None)
        a, b = model.branches(face, hars)
        cos = F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).mean()
        torch.testing.assert_close(logits, model(face, hars))
        torch.testing.assert_close(loss, focal_loss(logits, y) + 0.01 * (1 - cos))


# ---- FGRMER: patches and the AU graph ----------------------------------------------------------------------


def test_patches_are_cut_around_each_landmark_rows_by_y() -> None:
    rows, cols = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    value = rows * 1000 + cols  # one channel repeated: the min-max scaled mean is value / max
    motion = value.expand(1, 3, 128, 128).clone()
    landmarks = np.full((1, 2, 68, 2), np.nan, dtype=np.float32)
    points = np.tile([[40.0, 20.0]], (68, 1))
    points[17] = (0, 5)  # at the left border: replicated edge
    landmarks[0, 1] = points / 2  # apex landmarks of a 64-pixel crop
    patches = landmark_patches(motion, landmarks, crop_side=64, clips=["c0"])
    scaled = value / value.max()
    assert patches.shape == (1, 30, 7, 7)
    torch.testing.assert_close(patches[0, 1], scaled[17:24, 37:44])  # point 18 at (x 40, y 20): rows 17-23
    torch.testing.assert_close(patches[0, 0, :, 3], scaled[2:9, 0])  # point 17 at (x 0, y 5): rows 2-8
    torch.testing.assert_close(patches[0, 0, :, 0], scaled[2:9, 0])
    with pytest.raises(ModelConfigError, match=r"1 clip\(s\) have none .*: c9"):
        landmark_patches(motion, np.full((1, 2, 68, 2), np.nan), crop_side=64, clips=["c9"])


def test_au_adjacency_is_the_conditional_co_occurrence() -> None:
    names = ("1", "2", "4", "12", "25")
    aus = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 1, 0], [1, 1, 0, 0, 1], [np.nan] * 5, [0, 0, 1, 0, 0]], dtype=np.float32)
    a = au_adjacency(aus, names)
    at = {au: AUS.index(au) for au in AUS}
    # A[i, j] = P(AU i | AU j), as the authors' data/adj/adj_train*.npy (each column over one count n_j)
    expected = np.zeros((9, 9))
    expected[at["2"], at["1"]] = 2 / 3  # AU1 in 3 coded clips, with AU2 in 2
    expected[at["12"], at["1"]] = expected[at["25"], at["1"]] = 1 / 3
    expected[at["1"], at["2"]] = 1.0
    expected[at["25"], at["2"]] = 1 / 2
    expected[at["1"], at["12"]] = expected[at["1"], at["25"]] = expected[at["2"], at["25"]] = 1.0
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    assert au_adjacency(None, None) is None and au_adjacency(np.full((2, 5), np.nan), names) is None
    # the network's normalised adjacency: their gen_adj, (A D)^T D with D = diag(rowsum(A + I) ** -0.5)
    model = create_model("fgrmer", adjacency=torch.from_numpy(a))
    full = a + np.eye(9)
    d = np.diag(full.sum(1) ** -0.5)
    np.testing.assert_allclose(model.graph.adjacency.numpy(), (full @ d).T @ d, rtol=1e-6)
    # no AU coding: the identity adjacency (au_fallback identity)
    torch.testing.assert_close(create_model("fgrmer").graph.adjacency, torch.eye(9))


# a flow cache of CASME II's five classes at 32 px, AU-coded, each subject with every class (add `_landmarks`)
FLOW_CACHE = {
    "size": 32,
    "labels": "every class",
    "classes": CASME2_5CLASS.classes,
    "arrays": ("onset", "apex", "flow"),
    "au_names": AUS,
    "config": {"dataset": "casme2", "protocol": "5class"},
}


def _landmarks(n: int) -> np.ndarray:
    """`_face_points` for the onset and apex of `n` clips, but clip 1's onset had no face (its apex's are used)."""
    landmarks = np.broadcast_to(_face_points(), (n, 2, 68, 2)).astype(np.float32).copy()
    landmarks[1, 0] = np.nan
    return landmarks


def test_fgrmer_graph_comes_from_the_training_clips_only() -> None:
    cache = make_cache(3, 5, **FLOW_CACHE, landmarks=_landmarks(15))
    config = load_config(CONFIGS / "fgrmer_casme2.yaml")
    subject, train_idx, test_idx = fold_plan(cache.subjects)[0]
    before = fold_arguments(config, cache, train_idx)["adjacency"]
    cache.aus[test_idx] = 1.0  # every AU on every test clip
    torch.testing.assert_close(fold_arguments(config, cache, train_idx)["adjacency"], before)
    torch.testing.assert_close(before, torch.from_numpy(au_adjacency(cache.aus[train_idx], AUS)))
    smic = make_cache(3, 5, **{**FLOW_CACHE, "au_names": None, "config": {"dataset": "smic"}})  # no AU coding
    assert fgrmer_fold_args(smic) == {}  # SMIC: the identity graph


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_cache_without_landmarks_is_refused(name: str) -> None:
    cache = make_cache(3, 5, **FLOW_CACHE, landmarks=_landmarks(15))
    cache.landmarks = None
    config = load_config(CONFIGS / f"{name}_casme2.yaml")
    with pytest.raises(ModelConfigError, match=f"{name} cuts .* at the cache's landmarks, but this cache holds none"):
        network_inputs(cache, config, torch.device("cpu"))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_loso_runs_each_config_and_compare_places_it(name: str, tmp_path: Path) -> None:
    config_path = CONFIGS / f"{name}_casme2.yaml"
    sets = ["train.epochs=1", "train.batch_size=8", "train.device=cpu", "train.threads=1"]
    config = load_config(config_path, sets)
    # 246 clips: the whole of CASME II 5-class, so compare places the run in its column
    cache = make_cache(3, 82, **FLOW_CACHE, landmarks=_landmarks(246))
    metrics = run_loso(config, tmp_path / "run", "local", cache=cache, quiet=True)
    assert metrics["model"] == name and metrics["folds"] == 3
    assert len(list((tmp_path / "run" / "folds").glob("*.csv"))) == 3
    table = compare_tables([tmp_path / "run"])
    row = {"dual_atme": "Dual-ATME", "fgrmer": "DConv+ETran+AUGCN+AUFusion"}[name]
    reported = {"dual_atme": "0.817", "fgrmer": "0.743"}[name]  # Table 2, CASME II accuracy
    line = next(line for line in table.splitlines() if row in line and name in line)
    assert reported in line


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("dual_atme*.yaml")) + sorted(CONFIGS.glob("fgrmer*.yaml")))
def test_configs_name_their_sources(path: Path) -> None:
    text = path.read_text()
    config = load_config(path)
    assert config.model.name in METHOD_NAMES and config.data.representation == "flow"
    assert not config.augment.active
    if config.model.name == "dual_atme":
        assert "HaoliangZhou/Dual-ATME" in text and "Entropy 25(3):460" in text
        assert (config.train.lr, config.train.batch_size, config.train.epochs) == (1e-3, 128, 60)
        assert config.model.args == {"hars_attention": False}
    else:
        assert "raying777/FGRMER" in text and "Justin900429" in text and "MagNet" in text
        assert (config.train.lr, config.train.batch_size, config.train.epochs) == (1e-4, 32, 15)
        assert config.model.args == {"au_fallback": "identity"}
    assert len(list(CONFIGS.glob(f"{config.model.name}_*.yaml"))) == 4


def test_networks_are_plain_modules() -> None:
    for name in METHOD_NAMES:
        assert isinstance(create_model(name), nn.Module)


@pytest.mark.gpu
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_trains_on_cuda_with_bf16(name: str, tmp_path: Path) -> None:
    """The CUDA path (bf16 autocast; channels_last for image inputs) trains with the declared inputs and loss."""
    sets = ["train.epochs=2", "train.batch_size=8", "train.device=cuda", "train.precision=bfloat16"]
    config = load_config(CONFIGS / f"{name}_casme2.yaml", sets)
    metrics = run_loso(
        config, tmp_path / "run", "auto", cache=make_cache(3, 5, **FLOW_CACHE, landmarks=_landmarks(15)), quiet=True
    )
    assert metrics["folds"] == 3 and np.isfinite(metrics["f1_macro"])
