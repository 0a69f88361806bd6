"""SimCLR views on tensors and the InfoNCE loss."""

import math

import torch

from modelzoos.training.augment import resized_crop
from modelzoos.training.contrastive import _blur, _shift_hue, info_nce, knn_accuracy, simclr_view

MEAN, STD = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.25, 0.25, 0.25])


def normalized(K=2, B=8, H=16):
    return (torch.rand(K, B, 3, H, H, generator=torch.Generator().manual_seed(0)) - MEAN.view(3, 1, 1)) / STD.view(3, 1, 1)


def test_views_follow_the_keys_alone():
    x = normalized(K=3)
    keys = torch.tensor([5, 6, 7])
    v = simclr_view(x, keys, MEAN, STD)
    assert v.shape == x.shape and torch.isfinite(v).all()
    torch.testing.assert_close(v[2:], simclr_view(x[2:], keys[2:], MEAN, STD), rtol=0, atol=1e-6)
    assert torch.equal(v, simclr_view(x, keys, MEAN, STD))
    other = simclr_view(x, keys + 100, MEAN, STD)
    assert (other - v).abs().mean() > 0.1  # another key, another view
    pixels = v * STD.view(3, 1, 1) + MEAN.view(3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # still images in [0, 1]


def test_the_full_centred_crop_is_the_image():
    img = torch.rand(2, 3, 16, 16)
    u = torch.tensor([[1.0, 0.5, 0.5, 0.5]] * 2)  # area 1, aspect 1
    torch.testing.assert_close(resized_crop(img, u), img, rtol=0, atol=1e-5)
    small = resized_crop(img, torch.tensor([[0.0, 0.5, 0.0, 0.0]] * 2))  # 8% of the area, top left
    assert not torch.allclose(small, img, atol=1e-2)


def test_hue_rotation_and_blur():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    torch.testing.assert_close(_shift_hue(red, torch.zeros(1, 1, 1)), red)
    green = _shift_hue(red, torch.full((1, 1, 1), 1 / 3))
    torch.testing.assert_close(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), rtol=0, atol=1e-5)
    img = torch.rand(3, 3, 12, 12)
    rand = torch.rand(5, 3, 12, 12)
    keep = _blur(img, torch.full((3,), 0.1), apply=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(keep, img, rtol=0, atol=1e-4)  # sigma 0.1: the kernel is all centre
    blurred = _blur(rand, torch.full((5,), 2.0), apply=torch.tensor([True, True, False, True, True]))
    assert torch.equal(blurred[2], rand[2]) and blurred[0].std() < rand[0].std()
    torch.testing.assert_close(blurred.mean((2, 3)), rand.mean((2, 3)), rtol=0, atol=0.05)


def test_info_nce_per_model():
    K, B, D = 3, 8, 16
    z = torch.eye(D)[:B].expand(K, B, D)
    perfect = info_nce(z, z, temperature=0.07)
    assert (perfect < 1e-3).all()
    g = torch.Generator().manual_seed(0)
    noise = info_nce(torch.randn(K, B, D, generator=g), torch.randn(K, B, D, generator=g), temperature=1e4)
    torch.testing.assert_close(noise, torch.full((K,), math.log(2 * B - 1)), rtol=1e-3, atol=1e-3)
    mixed = torch.stack([z[0], torch.randn(B, D, generator=g), z[0]])
    loss = info_nce(mixed, mixed.clone(), temperature=0.07)
    assert loss[0] < 1e-3 and loss[2] < 1e-3 and loss[1] < 0.5  # each model scores alone


def test_views_of_one_channel_images():
    mean, std = torch.tensor([0.3]), torch.tensor([0.3])
    x = (torch.rand(2, 4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) - 0.3) / 0.3
    v = simclr_view(x, torch.tensor([1, 2]), mean, std)
    assert v.shape == x.shape and torch.isfinite(v).all() and not torch.equal(v, x)
    pixels = v * 0.3 + 0.3
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_knn_accuracy_votes_by_the_nearest_training_images():
    # two clusters on the unit circle, labelled 0 and 1; model 1's embedding swaps the labels' sides
    angles = torch.tensor([0.0, 0.1, 0.2, 3.0, 3.1, 3.2])
    bank = torch.stack([angles.cos(), angles.sin()], -1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    queries = torch.stack([torch.tensor([[1.0, 0.05], [-1.0, 0.05]]), torch.tensor([[-1.0, 0.05], [1.0, 0.05]])])
    correct = knn_accuracy(torch.stack([bank, bank]), labels, queries, torch.tensor([0, 1]), k=3)
    assert correct.tolist() == [2, 0]
    # leave-one-out at k 1: in the first cluster each point's nearest other point has the other
    # label (the lone label-1 point sits between the two label-0 ones), so all three are voted wrong
    spread = torch.tensor([0.0, 0.1, 0.25, 3.0, 3.1, 3.2])
    points = torch.stack([spread.cos(), spread.sin()], -1)[None]
    odd = torch.tensor([0, 1, 0, 1, 1, 1])
    loo = knn_accuracy(points, odd, points, odd, k=1, self_index=torch.arange(6))
    without = knn_accuracy(points, odd, points, odd, k=1)
    assert loo.tolist() == [3] and without.tolist() == [6]
