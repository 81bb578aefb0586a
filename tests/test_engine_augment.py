"""Augmentation: one transform for onset and apex, identity when switched off, right geometry, flow vectors."""

from __future__ import annotations

import numpy as np
import torch

from pamer.engine.augment import channel_stats, random_affine, warp
from pamer.preprocess.network_input import motion_inputs, normalize


def _pair(seed: int = 0, n: int = 4, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    onset = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    apex = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return onset, apex


def test_identical_frames_give_zero_motion_after_augmentation() -> None:
    onset, _ = _pair()
    frames = torch.as_tensor(onset).permute(0, 3, 1, 2).float() / 255
    stacked = torch.cat([frames, frames], dim=1)  # (B, 6, H, W): onset and apex channels together
    theta = random_affine(4, rotation=30, crop_scale=0.5, generator=torch.Generator().manual_seed(0))
    out = warp(stacked, theta)
    assert out.abs().sum() > 0
    torch.testing.assert_close(out[:, 3:] - out[:, :3], torch.zeros_like(out[:, :3]), rtol=0, atol=0)
    # the engine's path: the motion image of identical frames stays zero
    motion = motion_inputs(onset, onset.copy(), 32)
    assert warp(motion, theta).abs().max() == 0


def test_warping_the_difference_equals_difference_of_warped_frames() -> None:
    onset, apex = _pair(1)
    on = torch.as_tensor(onset).permute(0, 3, 1, 2).float() / 255
    ap = torch.as_tensor(apex).permute(0, 3, 1, 2).float() / 255
    theta = random_affine(4, rotation=20, crop_scale=0.6, generator=torch.Generator().manual_seed(1))
    pair = warp(torch.cat([on, ap], 1), theta)
    torch.testing.assert_close(warp(ap - on, theta), pair[:, 3:] - pair[:, :3], rtol=0, atol=1e-6)


def test_transforms_differ_between_clips_and_repeat_with_the_seed() -> None:
    a = random_affine(8, generator=torch.Generator().manual_seed(3))
    b = random_affine(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])


def test_switched_off_is_identity_and_flip_mirrors() -> None:
    x = torch.rand(3, 3, 16, 16)
    ident = random_affine(3, hflip=0.0, rotation=0.0, crop_scale=1.0)
    torch.testing.assert_close(warp(x, ident), x, rtol=0, atol=1e-5)
    flipped = random_affine(3, hflip=1.0, rotation=0.0, crop_scale=1.0)
    torch.testing.assert_close(warp(x, flipped), x.flip(-1), rtol=0, atol=1e-5)


def test_quarter_turn_matches_rot90() -> None:
    x = torch.rand(2, 1, 8, 8)
    theta = torch.tensor([[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]]).repeat(2, 1, 1)  # input (x, y) = output (y, -x)
    torch.testing.assert_close(warp(x, theta), torch.rot90(x, -1, dims=(-2, -1)), rtol=0, atol=1e-5)


def test_crop_zooms_in() -> None:
    # a centred crop of half the side shows the centre of a radial ramp magnified: smaller values at the border
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    ramp = (xx**2 + yy**2)[None, None]
    theta = torch.tensor([[[0.5, 0, 0], [0, 0.5, 0]]])
    out = warp(ramp, theta)
    assert out[0, 0, 0, 0] < ramp[0, 0, 0, 0] / 3


def test_flow_vectors_turn_with_a_flip() -> None:
    flow = torch.zeros(1, 3, 8, 8)
    flow[:, 0] = 1.0  # everything moves right
    flow[:, 2] = 0.5
    theta = random_affine(1, hflip=1.0, rotation=0.0, crop_scale=1.0)
    out = warp(flow, theta, vector_channels=(0, 1))
    torch.testing.assert_close(out[:, 0], -torch.ones(1, 8, 8), rtol=0, atol=1e-5)  # now moves left
    torch.testing.assert_close(out[:, 1], torch.zeros(1, 8, 8), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[:, 2], torch.full((1, 8, 8), 0.5), rtol=0, atol=1e-5)


def test_motion_inputs_and_normalisation() -> None:
    onset, apex = _pair(2, size=32)
    x = motion_inputs(onset, apex, 32)
    expected = (apex.astype(np.float32) - onset.astype(np.float32)) / 255
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), expected, atol=1e-6)
    assert motion_inputs(onset, apex, 16).shape == (4, 3, 16, 16)
    mean, std = channel_stats(x)
    z = normalize(x, mean, std)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
