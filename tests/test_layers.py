"""MultiScaleConv and ProgressiveAttention: hand-computed cases, shapes, float64 gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pamer.models import ModelConfigError, MultiScaleConv, ProgressiveAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _pa_with_weights(w_max: float, w_mean: float, bias: float) -> ProgressiveAttention:
    pa = ProgressiveAttention()
    with torch.no_grad():
        pa.conv.weight.copy_(torch.tensor([w_max, w_mean]).view(1, 2, 1, 1))
        pa.conv.bias.fill_(bias)
    return pa


def test_first_attention_map_matches_hand_computation() -> None:
    # 3 channels at 2x2; per pixel: max over channels and mean over channels, written out by hand
    x = torch.tensor(
        [[[[1.0, -2.0], [0.5, 3.0]], [[2.0, -1.0], [0.5, 0.0]], [[-3.0, -4.0], [2.0, 0.0]]]]
    )  # (1, 3, 2, 2)
    maxima = [[2.0, -1.0], [2.0, 3.0]]
    means = [[0.0, -7.0 / 3.0], [1.0, 1.0]]
    pa = _pa_with_weights(0.5, -1.5, 0.25)
    out, attention = pa(x)
    expected = torch.tensor(
        [[_sigmoid(0.5 * maxima[r][c] - 1.5 * means[r][c] + 0.25) for c in range(2)] for r in range(2)]
    ).view(1, 1, 2, 2)
    torch.testing.assert_close(attention, expected)
    torch.testing.assert_close(out, x * expected)


def test_later_attention_map_is_gated_by_max_pooled_previous_map() -> None:
    x = torch.zeros(1, 4, 2, 2)  # max = mean = 0, so the fresh map is sigmoid(bias) everywhere
    previous = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.4, 0.3, 0.1, 0.1], [0.0, 0.0, 0.5, 0.6], [0.7, 0.0, 0.2, 0.1]])
    pa = _pa_with_weights(1.0, 1.0, 0.0)
    _, attention = pa(x, previous.view(1, 1, 4, 4))
    block_max = torch.tensor([[0.4, 0.9], [0.7, 0.6]])  # max over each 2x2 window, by hand
    torch.testing.assert_close(attention, (0.5 * block_max).view(1, 1, 2, 2))


@pytest.mark.parametrize(("previous_size", "size"), [(8, 4), (7, 4), (4, 4)])
def test_later_map_never_exceeds_pooled_previous_map_and_scales_features(previous_size: int, size: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, size, size, generator=gen)
    previous = torch.rand(2, 1, previous_size, previous_size, generator=gen)
    pa = ProgressiveAttention()
    out, attention = pa(x, previous)
    assert attention.shape == (2, 1, size, size)
    assert bool((attention <= F.adaptive_max_pool2d(previous, size) + 1e-7).all())
    assert bool((attention >= 0).all())
    # every window of the previous map contributes: the pooled map is a max over a non-empty window
    assert bool((attention <= previous.amax(dim=(2, 3), keepdim=True) + 1e-7).all())
    torch.testing.assert_close(out, x * attention)


def test_progressive_attention_gradcheck() -> None:
    gen = torch.Generator().manual_seed(1)
    pa = ProgressiveAttention().double()
    x = torch.randn(1, 3, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    previous = torch.rand(1, 1, 5, 5, generator=gen, dtype=torch.float64).add(0.05).requires_grad_()  # 5 -> 3: odd
    assert torch.autograd.gradcheck(lambda a, b: pa(a, b)[0], (x, previous))
    assert torch.autograd.gradcheck(lambda a: pa(a)[0], (x,))


def test_progressive_attention_rejects_even_kernel() -> None:
    with pytest.raises(ModelConfigError, match="kernel_size"):
        ProgressiveAttention(kernel_size=2)


@pytest.mark.parametrize("kernels", [(3, 5, 7, 9), (1, 3, 5, 7), (9, 9, 9, 9), (3, 5)])
@pytest.mark.parametrize("size", [9, 16])
def test_multiscale_conv_branches_and_shape(kernels: tuple[int, ...], size: int) -> None:
    msc = MultiScaleConv(16, kernels)
    convs = [branch[0] for branch in msc.branches]
    assert [c.kernel_size for c in convs] == [(k, k) for k in kernels]
    assert [c.in_channels for c in convs] == [16] * len(kernels)
    assert [c.out_channels for c in convs] == [16 // len(kernels)] * len(kernels)
    x = torch.randn(2, 16, size, size)
    out = msc(x)
    assert out.shape == x.shape
    assert bool((out >= 0).all())  # each branch ends in a ReLU


def test_multiscale_conv_concatenates_branches_in_order() -> None:
    msc = MultiScaleConv(8, (3, 5)).eval()
    x = torch.randn(1, 8, 6, 6)
    out = msc(x)
    torch.testing.assert_close(out[:, :4], msc.branches[0](x))
    torch.testing.assert_close(out[:, 4:], msc.branches[1](x))


def test_multiscale_conv_gradcheck() -> None:
    gen = torch.Generator().manual_seed(2)
    msc = MultiScaleConv(4, (1, 3, 5, 7)).double()
    x = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(msc, (x,))


def test_multiscale_conv_rejects_indivisible_channels() -> None:
    with pytest.raises(ModelConfigError, match=r"18 channels.*4 branches"):
        MultiScaleConv(18, (3, 5, 7, 9))


def test_multiscale_conv_rejects_even_kernel() -> None:
    with pytest.raises(ModelConfigError, match="odd"):
        MultiScaleConv(8, (3, 4))
