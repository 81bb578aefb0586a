"""The model registry, every registered network, and the torchvision ResNet18 weight loader."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from pamer.cli import app
from pamer.models import (
    ModelConfigError,
    MultiScaleConv,
    PAMNet,
    _registry,
    count_flops,
    count_parameters,
    create_model,
    list_models,
    load_torchvision_resnet18,
    model_input_size,
    model_method,
    register_model,
)
from pamer.models.peers import METHOD_NAMES
from pamer.models.peers import NAMES as PEERS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# name -> (MSC kernels or None, has progressive attention, stem kernel): the paper's Tables 3 and 4
VARIANTS = {
    "pamnet": ((3, 5, 7, 9), True, 3),
    "pamnet_backbone": (None, False, 3),
    "pamnet_pa": (None, True, 3),
    "pamnet_msc": ((3, 5, 7, 9), False, 3),
    "pamnet_k1357": ((1, 3, 5, 7), True, 3),
    "pamnet_k57911": ((5, 7, 9, 11), True, 3),
    "pamnet_k3333": ((3, 3, 3, 3), True, 3),
    "pamnet_k9999": ((9, 9, 9, 9), True, 3),
    "pamnet_test": ((3, 5, 7, 9), True, 3),
    "resnet18": (None, False, 7),
}


def test_registered_names() -> None:
    assert list_models() == sorted([*VARIANTS, *PEERS, *METHOD_NAMES])


def _side(name: str, default: int) -> int:
    """The network's fixed input side where it has one (the peers), else `default`."""
    return model_input_size(name) or default


def _inputs(name: str, batch: int, side: int) -> list[torch.Tensor]:
    """Random inputs of the network: its declared input shapes (`pamer.models.method`), else one image."""
    return [torch.randn(batch, *shape) for shape in model_method(name).input_shapes or [(3, side, side)]]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_configuration(name: str) -> None:
    kernels, attention, stem_kernel = VARIANTS[name]
    model = create_model(name, num_classes=3)
    assert model.num_classes == 3
    assert model.conv1.kernel_size == (stem_kernel, stem_kernel)
    if kernels is None:
        assert not any(isinstance(m, MultiScaleConv) for m in model.modules())
    else:
        assert model.msc.kernels == kernels
    assert (model.attention is not None) == attention


@pytest.mark.parametrize("name", list_models())
def test_train_step_shapes_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).train()
    features, maps = model.forward_features(*_inputs(name, 2, _side(name, 112)))
    logits = model.forward_head(features)
    assert logits.shape == (2, 4)
    assert features.shape == (2, model.num_features)
    # only PA-MSC variants with progressive attention return maps; the peer networks have none
    has_attention = name in VARIANTS and VARIANTS[name][1]
    expected_maps = [(2, 1, side, side) for side in (28, 14, 7, 4)] if has_attention else []
    assert [tuple(a.shape) for a in maps] == expected_maps
    for i, a in enumerate(maps):
        assert bool(((a >= 0) & (a <= 1)).all()), i
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert torch.isfinite(logits).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize("name", list_models())
def test_eval_single_image(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    fixed = model_input_size(name)
    if model_method(name).inputs is not None:  # its own inputs (checked in tests/test_peer_methods.py)
        with torch.no_grad():
            logits = model(*_inputs(name, 1, size))
        assert logits.shape == (1, 5) and torch.isfinite(logits).all()
        return
    if fixed is not None and size != fixed:  # a fixed-size network refuses any other size with one clear message
        with pytest.raises(
            ModelConfigError, match=rf"{name} takes a \(B, 3, {fixed}, {fixed}\).*\(1, 3, {size}, {size}\)"
        ):
            model(torch.randn(1, 3, size, size))
        size = fixed
    with torch.no_grad():
        logits = model(torch.randn(1, 3, size, size))
    assert logits.shape == (1, 5)
    assert torch.isfinite(logits).all()


def test_attention_maps_shrink_progressively() -> None:
    torch.manual_seed(0)
    model = create_model("pamnet_test").eval()
    with torch.no_grad():
        _, maps = model.forward_features(torch.randn(2, 3, 64, 64))
    for previous, current in pairwise(maps):
        pooled = nn.functional.adaptive_max_pool2d(previous, current.shape[-2:])
        assert bool((current <= pooled + 1e-7).all())


def test_stem_layout_is_configurable() -> None:
    x = torch.randn(1, 3, 64, 64)
    default = create_model("pamnet_test").eval()
    no_pool = create_model("pamnet_test", stem_pool=False).eval()
    stride1 = create_model("pamnet_test", stem_stride=1, stem_pool=False).eval()
    with torch.no_grad():
        sides = [m.forward_features(x)[1][0].shape[-1] for m in (default, no_pool, stride1)]
    assert sides == [16, 32, 64]


def test_tiny_net_trains_on_two_threads_at_an_odd_batch() -> None:
    """pamnet_test in channels_last crashed torch 2.13's oneDNN (SIGSEGV in the 1x1 downsample's weight gradient)
    with two threads and a batch of 3, which is what `pamer demo --model pamnet_test` retrains for its picture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = create_model("pamnet_test", num_classes=3)
        for _ in range(3):
            model(torch.randn(3, 3, 64, 64)).sum().backward()
    finally:
        torch.set_num_threads(threads)
    assert all(p.grad is not None for p in model.parameters())
    assert create_model("pamnet", num_classes=3).channels_last and not model.channels_last


def test_same_seed_same_weights_and_output() -> None:
    x = torch.randn(2, 3, 48, 48)
    outputs, states = [], []
    for _ in range(2):
        torch.manual_seed(123)
        model = create_model("pamnet_test").eval()
        states.append(model.state_dict())
        with torch.no_grad():
            outputs.append(model(x))
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert torch.equal(outputs[0], outputs[1])
    torch.manual_seed(124)
    assert not torch.equal(create_model("pamnet_test").fc.weight, states[0]["fc.weight"])


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown model 'pamnett'.*pamnet_backbone.*resnet18"):
        create_model("pamnett")


def test_unknown_option_is_named() -> None:
    with pytest.raises(ModelConfigError, match=r"no option 'stem_strid'"):
        create_model("pamnet", stem_strid=1)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_classes(bad: object) -> None:
    with pytest.raises(ModelConfigError, match="num_classes"):
        create_model("pamnet_test", num_classes=bad)


def test_wrong_input_shape_is_reported() -> None:
    model = create_model("pamnet_test")
    with pytest.raises(ModelConfigError, match=r"\(B, 3, H, W\).*\(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))


def test_duplicate_registration_refused() -> None:
    def pamnet(**kwargs: object) -> nn.Module:
        return PAMNet()

    with pytest.raises(ModelConfigError, match="registered already"):
        register_model(pamnet)


def test_register_and_create_new_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # a private copy of the registry, so the probe does not leak into other tests' list_models()
    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))

    def _pamnet_registry_probe(**kwargs: object) -> nn.Module:
        return PAMNet(layers=(1, 1, 1, 1), widths=(8, 8, 8, 8), **kwargs)

    register_model(_pamnet_registry_probe)
    assert "_pamnet_registry_probe" in list_models()
    assert create_model("_pamnet_registry_probe", num_classes=2).fc.out_features == 2


# ---- torchvision-format ResNet18 weights --------------------------------------------------------------------


def _torchvision_resnet18_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys and shapes of `torchvision.models.resnet18().state_dict()`, written out here, random values."""
    gen = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    in_c = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            shapes[f"{p}.conv1.weight"] = (c, in_c if block == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if block == 0 and stage > 1:
                shapes[f"{p}.downsample.0.weight"] = (c, in_c, 1, 1)
                bn(f"{p}.downsample.1", c)
        in_c = c
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    counters = {k: torch.randint(0, 1000, s, generator=gen) for k, s in shapes.items() if not s}
    return {k: counters[k] if not s else torch.randn(s, generator=gen) for k, s in shapes.items()}


def test_reference_state_dict_has_torchvision_key_count() -> None:
    assert len(_torchvision_resnet18_state_dict()) == 122  # len(torchvision.models.resnet18().state_dict())


def test_load_torchvision_weights_into_pamnet_fills_stages() -> None:
    weights = _torchvision_resnet18_state_dict()
    model = create_model("pamnet", num_classes=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unused = load_torchvision_resnet18(model, weights)
    # 3x3 stem and 5 classes differ from ImageNet's ResNet18 by design: those keys are reported, not loaded
    stem_and_fc = sorted(k for k in weights if k.startswith(("conv1.", "bn1.", "fc.")))
    assert unused == stem_and_fc
    after = model.state_dict()
    for key, value in weights.items():
        if key.startswith("layer"):
            assert torch.equal(after[key], value), key
    for key in after:
        if not key.startswith("layer"):
            assert torch.equal(after[key], before[key]), key  # stem, MSC, PA and fc untouched


def test_load_torchvision_weights_into_resnet18_uses_every_key() -> None:
    weights = _torchvision_resnet18_state_dict()
    model = create_model("resnet18", num_classes=1000)
    assert load_torchvision_resnet18(model, weights) == []
    after = model.state_dict()
    assert sorted(after) == sorted(weights)
    for key, value in weights.items():
        assert torch.equal(after[key], value), key


def test_load_torchvision_weights_wrong_shape_names_key() -> None:
    weights = _torchvision_resnet18_state_dict()
    weights["layer3.1.conv2.weight"] = torch.zeros(256, 128, 3, 3)
    with pytest.raises(ModelConfigError, match=r"'layer3\.1\.conv2\.weight'.*\(256, 128, 3, 3\).*\(256, 256, 3, 3\)"):
        load_torchvision_resnet18(create_model("pamnet"), weights)


def test_load_torchvision_weights_missing_stage_key() -> None:
    weights = _torchvision_resnet18_state_dict()
    del weights["layer2.0.downsample.0.weight"]
    with pytest.raises(ModelConfigError, match=r"lack 1 stage tensors.*layer2\.0\.downsample\.0\.weight"):
        load_torchvision_resnet18(create_model("pamnet_backbone"), weights)


# ---- cost counting and `pamer models` -----------------------------------------------------------------------


def test_flops_of_msc_and_pa_match_hand_count() -> None:
    extra = count_flops("pamnet", 224) - count_flops("pamnet_backbone", 224)
    # MSC at 56x56 on 64 channels: four branches 64 -> 16 with k x k kernels; PA: a 2 -> 1 1x1 conv per stage
    msc = 2 * 64 * 16 * 56 * 56 * (3 * 3 + 5 * 5 + 7 * 7 + 9 * 9)
    pa = 2 * 2 * (56 * 56 + 28 * 28 + 14 * 14 + 7 * 7)
    assert extra == msc + pa
    assert count_flops("resnet18", 224) == 3_627_127_808  # torchvision ResNet18: 1.814 GMACs


def test_models_command_lists_every_model() -> None:
    result = CliRunner().invoke(app, ["models", "--flops", "--size", "64"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in list_models():
        row = next(line for line in lines if f" {name} " in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells[1] == str(model_input_size(name) or "any"), name
        assert float(cells[2]) == pytest.approx(count_parameters(create_model(name)) / 1e6, abs=0.005), name
        assert float(cells[3]) == pytest.approx(count_flops(name, _side(name, 64)) / 1e9, abs=0.005), name


def test_models_command_rejects_tiny_size() -> None:
    result = CliRunner().invoke(app, ["models", "--size", "8"])
    assert result.exit_code != 0
    assert "--size must be at least 16" in result.output
