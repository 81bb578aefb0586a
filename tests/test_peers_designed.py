"""The peers designed from their papers' descriptions (LBP+attention, MADFN): layer shapes, gradients, each
module's hand-checkable behaviour (channel shuffle, parallel attention, LBP image, patch removal, AU table and
fusion) and the messages for wrong inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.feature import local_binary_pattern
from torch import nn

from _engine import make_cache
from _models import layer_shapes
from pamer.config import SHIPPED, load_config
from pamer.engine import run_loso
from pamer.models import ModelConfigError, create_model, list_models, model_input_size, model_method
from pamer.models.peers import DESIGNED
from pamer.models.peers.lbp_attention import (
    ParallelAttention,
    ShuffleUnit,
    channel_shuffle,
    lbp_attention_inputs,
    lbp_images,
)
from pamer.models.peers.madfn import AU_VOCABULARY, au_table, madfn_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = SHIPPED / "peers"
SIDE = 112
NUM_AUS = len(AU_VOCABULARY) + 1


def example_inputs(name: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Random inputs of each designed peer (image; its LBP image or AU table where it reads one)."""
    x = torch.randn(batch, 3, SIDE, SIDE)
    if name == "lbp_attention":
        return x, torch.randint(0, 256, (batch, 1, SIDE, SIDE)).float()
    if name == "madfn":
        return x, torch.randint(0, 2, (batch, NUM_AUS)).float()
    return (x,)


def test_designed_peers_are_registered_at_112() -> None:
    assert set(DESIGNED) <= set(list_models())
    assert {name: model_input_size(name) for name in DESIGNED} == dict.fromkeys(DESIGNED, SIDE)


# ---- shapes ----------------------------------------------------------------------------------------------

K = 5  # classes, and MADFN's class tokens
SHAPES = {
    "lbp_attention": {
        "rgb_stem": (2, 24, 56, 56),
        "rgb_stages.0": (2, 48, 28, 28),
        "rgb_stages.1": (2, 96, 14, 14),
        "rgb_stages.2": (2, 192, 7, 7),
        "lbp_stem": (2, 24, 56, 56),
        "lbp_stages.0": (2, 48, 28, 28),
        "lbp_stages.1": (2, 96, 14, 14),
        "lbp_stages.2": (2, 192, 7, 7),
        "attention.spatial": (2, 1, 7, 7),
        "head": (2, K),
    },
    "madfn": {
        "patch_embed": (2, 192, 14, 14),  # 8 x 8 patches of 112 x 112
        **{f"blocks.{i}.mlp": (2, K + 196, 192) for i in range(3)},  # class tokens + every patch
        **{f"blocks.{i}.mlp": (2, K + 98, 192) for i in range(3, 6)},  # half the patches removed after block 3
        "fusion.gate": (2, K + 98, 192),
        "head": (2, K),
    },
}
SHAPES["madfn_image"] = {p: s for p, s in SHAPES["madfn"].items() if not p.startswith("fusion")}
FEATURES = {"lbp_attention": 384, "madfn": 192, "madfn_image": 192}
MAPS = {"lbp_attention": (2, 1, 7, 7), "madfn": (2, 1, 14, 14), "madfn_image": (2, 1, 14, 14)}


@pytest.mark.parametrize("name", DESIGNED)
def test_layer_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=K).eval()
    seen, features, logits, maps = layer_shapes(model, SHAPES[name], *example_inputs(name))
    assert seen == SHAPES[name]
    assert features.shape == (2, FEATURES[name]) and logits.shape == (2, K)
    assert [tuple(m.shape) for m in maps] == [MAPS[name]]
    assert all(bool(((m >= 0) & (m <= 1)).all()) for m in maps)


@pytest.mark.parametrize("name", DESIGNED)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).train()
    inputs = [x.requires_grad_() for x in example_inputs(name, batch=4)]
    nn.functional.cross_entropy(model(*inputs), torch.tensor([0, 1, 2, 1])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    for i, x in enumerate(inputs):  # every input is read
        assert x.grad is not None and x.grad.abs().sum() > 0, i


def test_structure_follows_the_design() -> None:
    model = create_model("lbp_attention")
    # ShuffleNet V2 0.5x unit counts (4, 8, 4: a stride-2 unit, then 3, 7, 3 basic units), dense transitions
    assert [len(stage.units) for stage in model.rgb_stages] == [3, 7, 3]
    assert [t[0].in_channels for t in model.rgb_stages[1].transitions] == [96 * k for k in range(2, 9)]
    assert [stage[1].scales for stage in model.lbp_stages] == [4, 4, 4]
    madfn = create_model("madfn", num_classes=3)
    assert madfn.cls_tokens.shape == (1, 3, 192) and len(madfn.blocks) == 6 and madfn.keep == 98
    assert create_model("madfn_image").fusion is None


# ---- the modules, by hand -----------------------------------------------------------------------------------


def test_channel_shuffle_interleaves_the_two_halves() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_shuffle_unit_keeps_half_of_its_input_at_stride_1() -> None:
    unit = ShuffleUnit(8, 8, 1).eval()
    x = torch.randn(1, 8, 5, 5)
    out = unit(x)
    # after the shuffle, the even channels are the untouched first half
    torch.testing.assert_close(out[:, 0::2], x[:, :4])
    assert ShuffleUnit(8, 16, 2)(x).shape == (1, 16, 3, 3)


def test_parallel_attention_sums_the_two_reweighted_maps() -> None:
    attention = ParallelAttention(32)
    for p in attention.parameters():
        nn.init.zeros_(p)
    x = torch.randn(2, 32, 4, 4)
    out, spatial = attention(x)
    torch.testing.assert_close(out, x)  # both maps sigmoid(0) = 0.5: x * 0.5 + x * 0.5
    torch.testing.assert_close(spatial, torch.full((2, 1, 4, 4), 0.5))
    # the spatial map alone: a bias of +inf on it gives x * 0.5 + x * 1
    nn.init.constant_(attention.spatial.bias, 1e4)
    torch.testing.assert_close(attention(x)[0], 1.5 * x)


def test_lbp_image_is_scikit_image_lbp_of_the_grey_apex() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((2, 3, 9, 9))
    grey = np.rint((0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]) * 255).astype(np.uint8)
    expected = np.stack([local_binary_pattern(g, 8, 1, method="default") for g in grey])
    out = lbp_images(rgb)
    assert out.shape == (2, 1, 9, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], expected)
    # by hand: inside a flat image every neighbour is >= the centre (all 8 bits); a bright dot has none
    assert (lbp_images(np.full((1, 3, 5, 5), 0.5))[0, 0, 1:-1, 1:-1] == 255).all()
    dot = np.ones((1, 3, 5, 5))
    dot[0, :, 2, 2] = 0.0  # a dark dot: below (1, 1)'s bottom-right neighbour, bit 7 (at -45 degrees)
    codes = lbp_images(dot)[0, 0]
    assert codes[2, 2] == 255 and codes[1, 1] == 255 - 2**7 and codes[3, 3] == 255 - 2**3
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(2, 9, 9\)"):
        lbp_images(rgb[:, 0])


def test_patch_removal_keeps_the_patches_the_class_tokens_attend_to() -> None:
    model = create_model("madfn_image", num_classes=2)
    k, n = 2, 196
    tokens = torch.randn(1, k + n, 192)
    weights = torch.zeros(1, k + n, k + n)
    favoured = torch.randperm(n)[: model.keep]
    weights[0, 0, k + favoured] = 1.0  # class token 0 attends to these
    weights[0, 1, k + favoured[: model.keep // 2]] = 2.0  # class token 1 to half of them, more strongly
    weights[0, k:, :] = 5.0  # what the patches attend to does not count
    kept, saliency = model.remove_patches(tokens, weights)
    assert kept.shape == (1, k + model.keep, 192)
    torch.testing.assert_close(kept[:, :k], tokens[:, :k])
    chosen = {int(i) for i in favoured}
    found = {int(torch.nonzero((tokens[0] == row).all(1))[0]) - k for row in kept[0, k:]}
    assert found == chosen
    # the more attended half comes first (top-k order)
    first = {int(torch.nonzero((tokens[0] == row).all(1))[0]) - k for row in kept[0, k : k + model.keep // 2]}
    assert first == {int(i) for i in favoured[: model.keep // 2]}
    torch.testing.assert_close(saliency[0, favoured[: model.keep // 2]], torch.full((model.keep // 2,), 1.5))


def test_au_table_maps_the_cache_columns_onto_the_vocabulary() -> None:
    aus = np.array([[1, 0, 1], [np.nan, np.nan, np.nan], [0, 1, 0]], dtype=np.float32)
    table = au_table(aus, ("1", "4", "38"), 3)
    assert table.shape == (3, NUM_AUS) and table.dtype == np.float32
    one, four = AU_VOCABULARY.index("1"), AU_VOCABULARY.index("4")
    expected = np.zeros((3, NUM_AUS), dtype=np.float32)
    expected[0, one] = 1  # AU 38 (nostril dilator) is outside the vocabulary
    expected[1, -1] = 1  # no coding: the flag, not an empty set
    expected[2, four] = 1
    np.testing.assert_array_equal(table, expected)
    none = au_table(None, None, 2)
    np.testing.assert_array_equal(none, np.eye(NUM_AUS, dtype=np.float32)[[-1, -1]])
    with pytest.raises(ValueError, match=r"shape \(3, 3\) for 2 clips and 3 AU names"):
        au_table(aus, ("1", "4", "38"), 2)


def test_the_aus_steer_the_image_features() -> None:
    torch.manual_seed(0)
    model = create_model("madfn", num_classes=3).eval()
    x = torch.randn(1, 3, SIDE, SIDE).expand(2, -1, -1, -1)
    aus = torch.zeros(2, NUM_AUS)
    aus[0, AU_VOCABULARY.index("4")] = 1
    aus[1, AU_VOCABULARY.index("12")] = 1
    with torch.no_grad():
        logits = model(x, aus)
        same = model(x, aus[[0, 0]])
    assert not torch.allclose(logits[0], logits[1])  # one image, two AU sets: two answers
    torch.testing.assert_close(same[0], same[1])


# ---- messages -----------------------------------------------------------------------------------------------


def test_wrong_inputs_are_named() -> None:
    lbp = create_model("lbp_attention")
    with pytest.raises(ModelConfigError, match=r"lbp_attention takes an RGB apex batch \(B, 3, 112, 112\).*\(2, 1, 64"):
        lbp(torch.randn(2, 3, 112, 112), torch.randn(2, 1, 64, 64))
    madfn = create_model("madfn")
    with pytest.raises(ModelConfigError, match=r"madfn takes a \(B, 3, 112, 112\).*\(2, 3, 224, 224\)"):
        madfn(torch.randn(2, 3, 224, 224), torch.zeros(2, NUM_AUS))
    with pytest.raises(ModelConfigError, match="the AU fusion module is on, so the AU table must be given"):
        madfn(torch.randn(2, 3, 112, 112))
    with pytest.raises(ModelConfigError, match=rf"AU table of shape \(B, {NUM_AUS}\), got \(2, 3\)"):
        madfn(torch.randn(2, 3, 112, 112), torch.zeros(2, 3))
    with pytest.raises(ModelConfigError, match="is off, so the AU table must be left out"):
        create_model("madfn_image")(torch.randn(2, 3, 112, 112), torch.zeros(2, NUM_AUS))
    with pytest.raises(ModelConfigError, match="keep_ratio must be in"):
        create_model("madfn", keep_ratio=0.0)


# ---- the inputs each network builds from a cache ------------------------------------------------------------


# two clips of 4 px from casme2 (each test sets what it reads)
TWO_CLIPS = {"subjects": 2, "per_subject": 1, "size": 4, "config": {"dataset": "casme2"}}


def test_lbp_attention_inputs_are_the_apex_and_its_lbp_image() -> None:
    cache = make_cache(**TWO_CLIPS)
    cache.apex = np.full((2, 4, 4, 3), 102, dtype=np.uint8)  # brightness 0.4
    base = torch.rand(2, 3, SIDE, SIDE) * 0.2 + 0.3
    sides = []
    rgb, lbp = lbp_attention_inputs(cache, lambda side: sides.append(side) or base)
    assert rgb is base and sides == [SIDE]
    np.testing.assert_array_equal(lbp.numpy(), lbp_images(base.numpy()))
    with pytest.raises(ModelConfigError, match=r"not the cache's apex crops .*set data.representation: apex"):
        lbp_attention_inputs(cache, lambda side: base - 0.4)  # a motion image: mean near 0


def test_madfn_inputs_add_the_au_rows_and_refuse_a_cache_without_aus() -> None:
    aus = np.array([[1, 0], [np.nan, np.nan]], dtype=np.float32)
    base = torch.rand(2, 3, SIDE, SIDE)
    image, table = madfn_inputs(make_cache(**TWO_CLIPS, aus=aus, au_names=("4", "12")), lambda side: base)
    assert image is base and table.shape == (2, NUM_AUS, 1, 1)
    np.testing.assert_array_equal(table[:, :, 0, 0].numpy(), au_table(aus, ("4", "12"), 2))
    with pytest.raises(
        ModelConfigError, match=r"madfn fuses each clip's action units, but casme2 codes none.*madfn_image"
    ):
        madfn_inputs(make_cache(**TWO_CLIPS), lambda side: base)


def test_declared_input_shapes() -> None:
    assert model_method("lbp_attention").input_shapes == ((3, SIDE, SIDE), (1, SIDE, SIDE))
    assert model_method("madfn").input_shapes == ((3, SIDE, SIDE), (NUM_AUS, 1, 1))
    assert not model_method("madfn_image").declared  # one image in, cross-entropy out: the plain path


# ---- a tiny LOSO run of every shipped config ----------------------------------------------------------------

# 3 subjects x 4 clips of 16 px faces, each subject with every class; AUs of CASME II's sheet where coded
LOSO = {"subjects": 3, "per_subject": 4, "size": 16, "labels": "every class"}
LOSO_AUS = ("1", "4", "12")


CONFIG_NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem.startswith(("lbp_attention", "madfn")))


def test_every_dataset_has_both_configs() -> None:
    assert [
        f"{m}_{d}" for m in ("lbp_attention", "madfn") for d in ("casme2", "composite", "samm", "smic")
    ] == CONFIG_NAMES


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_loso_runs_each_config(name: str, tmp_path: Path) -> None:
    config = load_config(CONFIGS / f"{name}.yaml", ["train.epochs=1", "train.threads=1", "train.device=cpu"])
    header = (CONFIGS / f"{name}.yaml").read_text()
    assert "DESIGN FROM THE PAPER'S DESCRIPTION, NO AUTHORS' CODE" in header
    assert config.train.input_size == SIDE and not config.augment.active
    smic = name.endswith("smic")
    assert config.model.name == (
        "madfn_image" if name == "madfn_smic" else name.split("_")[0].replace("lbp", "lbp_attention")
    )
    if name.startswith("madfn"):
        assert "pretrained" in header and ("WITHOUT ITS AU FUSION" in header) == smic
    metrics = run_loso(
        config, tmp_path / "run", "local", cache=make_cache(**LOSO, au_names=None if smic else LOSO_AUS), quiet=True
    )
    assert metrics["model"] == config.model.name and metrics["folds"] == 3
    table = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "run" / "folds").glob("*.csv")))
    probs = table[[f"prob_{c}" for c in ("negative", "positive", "surprise")]].to_numpy()
    assert probs.shape == (12, 3) and np.isfinite(probs).all()


def test_madfn_refuses_a_cache_without_aus_by_name(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "madfn_casme2.yaml", ["train.epochs=1", "train.device=cpu"])
    with pytest.raises(ModelConfigError, match="synthetic codes none.*madfn_image"):
        run_loso(config, tmp_path / "run", "local", cache=make_cache(**LOSO), quiet=True)


def test_lbp_attention_refuses_a_motion_image(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "lbp_attention_casme2.yaml", ["train.epochs=1", "data.representation=diff"])
    with pytest.raises(ModelConfigError, match="set data.representation: apex"):
        run_loso(config, tmp_path / "run", "local", cache=make_cache(**LOSO, au_names=LOSO_AUS), quiet=True)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["lbp_attention_casme2", "madfn_casme2", "madfn_smic"])
def test_designed_peer_trains_on_cuda_with_bf16(name: str, tmp_path: Path) -> None:
    """The CUDA path (bf16 autocast, channels_last images, the AU row as (B, A, 1, 1) channels) trains and predicts."""
    config = load_config(CONFIGS / f"{name}.yaml", ["train.epochs=2", "train.device=cuda", "train.precision=bfloat16"])
    run_loso(
        config,
        tmp_path / "run",
        "local",
        cache=make_cache(**LOSO, au_names=None if name == "madfn_smic" else LOSO_AUS),
        quiet=True,
    )
    table = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "run" / "folds").glob("*.csv")))
    probs = table[[f"prob_{c}" for c in ("negative", "positive", "surprise")]].to_numpy()
    assert probs.shape == (12, 3) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
