"""Train-time augmentation on tensors: what each transform does, and that draws follow the keys."""

import torch

from modelzoos.spec import Augmentation
from modelzoos.training.augment import augment, black

FILL = torch.tensor([-1.0, -2.0, 0.5])


def images(K=2, B=64, H=8):
    return torch.rand(K, B, 3, H, H, generator=torch.Generator().manual_seed(0)) + 1.0  # never the fill


def test_nothing_asked_nothing_done():
    x = images()
    assert torch.equal(augment(x, torch.tensor([1, 2]), Augmentation(), FILL), x)
    assert not Augmentation() and Augmentation(hflip=True)


def test_crop_with_padding_is_a_shifted_window_over_black():
    x = images(K=1)
    out = augment(x, torch.tensor([7]), Augmentation(crop_padding=2), FILL)[0]
    padded = FILL.view(1, 3, 1, 1).repeat(64, 1, 12, 12)
    padded[:, :, 2:10, 2:10] = x[0]
    shifts = set()
    for i, img in enumerate(out):
        found = [(t, l) for t in range(5) for l in range(5) if torch.equal(padded[i, :, t : t + 8, l : l + 8], img)]
        assert found, f"image {i} is no window of its padded image"
        shifts.add(found[0])
    assert len(shifts) > 10  # offsets are drawn per image, over the whole range


def test_flip_mirrors_about_half_the_images():
    x = images(K=1)
    out = augment(x, torch.tensor([3]), Augmentation(hflip=True), FILL)[0]
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x[0])]
    kept = [torch.equal(o, i) for o, i in zip(out, x[0])]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48


def test_rotation_turns_about_the_centre_and_fills_corners_black():
    x = torch.ones(1, 64, 3, 9, 9) * 2.0
    out = augment(x, torch.tensor([5]), Augmentation(rotation=20), FILL)[0]
    assert torch.equal(out[:, :, 4, 4], x[0, :, :, 4, 4])  # the centre pixel stays
    corners = out[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    is_fill = (corners == FILL.view(1, 3, 1)).all(1).any(1)
    assert 32 < is_fill.sum() < 64  # small angles uncover no corner pixel, larger ones do
    assert torch.equal(augment(x, torch.tensor([5]), Augmentation(rotation=0.001), FILL), x)


def test_a_models_draws_depend_on_its_key_alone():
    x, aug = images(K=3), Augmentation(crop_padding=4, hflip=True, rotation=20)
    keys = torch.tensor([11, 22, 33])
    out = augment(x, keys, aug, FILL)
    torch.testing.assert_close(out[1:2], augment(x[1:2], keys[1:2], aug, FILL), rtol=0, atol=0)
    assert torch.equal(out, augment(x, keys, aug, FILL))
    other = augment(x[1:2], torch.tensor([44]), aug, FILL)
    assert not torch.equal(other, out[1:2])


def test_black_is_zero_before_normalization():
    assert torch.equal(black(None, None, 3), torch.zeros(3))
    torch.testing.assert_close(black([0.5, 0.25], [0.5, 0.5], 2), torch.tensor([-1.0, -0.5]))
