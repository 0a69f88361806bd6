"""Train-time augmentation on tensors: what each transform does, and that draws follow the keys."""

import pytest
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


def test_erasing_blanks_one_rectangle_with_probability_p():
    x = images(K=1, B=200, H=16)
    out = augment(x, torch.tensor([9]), Augmentation(erasing=0.25), FILL)[0]
    erased = (out == 0).all(1)  # H x W masks of erased pixels, per image
    changed = erased.flatten(1).any(1)
    assert 25 < changed.sum() < 75  # about a quarter of 200
    for img, mask, orig in zip(out[changed], erased[changed], x[0][changed]):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and mask.sum() == box.numel()  # one solid rectangle
        assert 0.02 * 256 * 0.5 <= box.numel() <= 0.33 * 256 * 1.5
        assert torch.equal(img[:, ~mask], orig[:, ~mask])  # the rest untouched
    assert torch.equal(out[~changed], x[0][~changed])


def test_mixup_and_cutmix_mix_images_and_targets_alike():
    from modelzoos.training.augment import mix, mix_draws

    x = images(K=3, B=6, H=8)
    y = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(1))
    both = Augmentation(mixup=0.8, cutmix=1.0)
    draws = torch.cat([mix_draws([s], 1, step, both) for s in range(40) for step in range(5)])
    assert 0.3 < draws[:, 1].mean() < 0.7 and 0 < draws[:, 0].min() and draws[:, 0].max() < 1
    assert torch.equal(mix_draws([3, 4], 2, 7, both), torch.cat([mix_draws([3], 2, 7, both), mix_draws([4], 2, 7, both)]))
    draws = torch.tensor([[0.3, 0.0, 0.5, 0.5], [0.75, 1.0, 0.5, 0.5], [0.5, 1.0, 0.0, 0.0]])
    mixed, soft = mix(x, y, draws, 10)
    torch.testing.assert_close(mixed[0], 0.3 * x[0] + 0.7 * x[0].flip(0))
    torch.testing.assert_close(soft.sum(-1), torch.ones(3, 6))
    assert soft[0, 0, y[0, 0]] >= 0.3 - 1e-6
    # CutMix, lam 0.75 on 8x8: a 4x4 box centred at (4, 4) holds the reversed batch's pixels
    box = torch.zeros(8, 8, dtype=torch.bool)
    box[2:6, 2:6] = True
    assert torch.equal(mixed[1][:, :, box], x[1].flip(0)[:, :, box]) and torch.equal(mixed[1][:, :, ~box], x[1][:, :, ~box])
    if y[1, 0] != y[1, -1]:
        assert soft[1, 0, y[1, 0]] == pytest.approx(0.75) and soft[1, 0, y[1, -1]] == pytest.approx(0.25)
    # a box clipped at the corner: the targets follow the area actually pasted (2x2 of 64)
    assert soft[2].max(-1).values.min() >= 1 - 4 / 64 - 1e-6


def test_resized_crop_comes_first_and_leaves_the_other_draws_alone():
    from modelzoos.architectures.dropout import keyed_uniform
    from modelzoos.training.augment import resized_crop

    x, keys = images(), torch.tensor([3, 4])
    both = augment(x, keys, Augmentation(resized_crop=True, hflip=True), FILL)
    cropped = resized_crop(x.flatten(0, 1), keyed_uniform(keys ^ 0x2D2D2D2D, (64, 4)).flatten(0, 1)).view_as(x)
    assert torch.equal(both, augment(cropped, keys, Augmentation(hflip=True), FILL))
    assert not torch.allclose(cropped, x, atol=1e-2) and Augmentation(resized_crop=True)
    assert torch.equal(augment(x[1:], keys[1:], Augmentation(resized_crop=True), FILL), augment(x, keys, Augmentation(resized_crop=True), FILL)[1:])
