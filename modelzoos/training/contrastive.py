"""The SimCLR objective on tensors, on the device: two augmented views per image and InfoNCE.

Views follow SimCLR's recipe as the ViT zoo used it: RandomResizedCrop (scale 0.08-1, ratio
3/4-4/3), horizontal flip, ColorJitter(0.5, 0.5, 0.5, 0.1) with probability 0.8, grayscale with
probability 0.2 and a Gaussian blur (kernel 9, sigma 0.1-2) with probability 0.5 (SimCLR's;
the source gives none). Every draw comes from per-image keyed uniforms (`keyed_uniform`), so a
model's views are the same in any group, process or device. Batches of all K models of a group
are transformed at once: no PIL, no per-image Python.

Differences from torchvision, on purpose: the crop (`augment.resized_crop`) is resampled
bilinearly in one `grid_sample` (no antialiasing), and a crop draw that does not fit is clipped
instead of retried. On 1-channel images the colour operations that need colour (saturation, hue,
grayscale) are left out.

A contrastive model has no classifier, so its accuracies are k-NN accuracies (`knn_accuracy`):
each image takes the weighted vote of its 20 nearest training images in the model's embedding,
as DINO's k-NN evaluation does (cosine similarity, weights exp(similarity / 0.07)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..architectures.dropout import keyed_uniform
from .augment import resized_crop

DRAWS = 12  # uniforms per image: crop (4), flip, jitter (p, 4 factors, order), grayscale, blur (p, sigma)
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def simclr_view(x: Tensor, keys: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """One augmented view of normalized images x (K x B x C x H x W, C 3 or 1), model k's from
    keys[k]. Draw two views with two keys per model for a positive pair."""
    K, B, C, H, W = x.shape
    u = keyed_uniform(keys, (B, DRAWS)).flatten(0, 1)
    mean, std = mean.view(1, C, 1, 1).to(x), std.view(1, C, 1, 1).to(x)
    img = (x.flatten(0, 1) * std + mean).clamp(0, 1)  # colour operations work on [0, 1] pixels
    img = resized_crop(img, u[:, 0:4])
    img = torch.where((u[:, 4] < 0.5).view(-1, 1, 1, 1), img.flip(-1), img)
    img = _color_jitter(img, u[:, 5:10], apply=u[:, 10] < 0.8)
    if C == 3:
        gray = (img * torch.tensor(GRAY, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(img)
        img = torch.where((u[:, 11] < 0.2).view(-1, 1, 1, 1), gray, img)
    u_blur = keyed_uniform(keys ^ 0x3C3C3C3C, (B, 2)).flatten(0, 1)
    img = _blur(img, sigma=0.1 + 1.9 * u_blur[:, 1], apply=u_blur[:, 0] < 0.5)
    return ((img - mean) / std).view(K, B, C, H, W)


def _color_jitter(img: Tensor, u: Tensor, apply: Tensor) -> Tensor:
    """ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1) in one of two orders;
    of a 1-channel image its brightness and contrast."""
    b, c, s = (0.5 + u[:, i].view(-1, 1, 1, 1) for i in range(3))
    hue = (u[:, 3] * 0.2 - 0.1).view(-1, 1, 1)
    weights = torch.tensor(GRAY, device=img.device).view(1, 3, 1, 1)

    def gray(t: Tensor) -> Tensor:
        return t if t.shape[1] == 1 else (t * weights).sum(1, keepdim=True)

    def brightness(t: Tensor) -> Tensor:
        return (t * b).clamp(0, 1)

    def contrast(t: Tensor) -> Tensor:
        return (c * t + (1 - c) * gray(t).mean((2, 3), keepdim=True)).clamp(0, 1)

    if img.shape[1] == 1:
        return torch.where(apply.view(-1, 1, 1, 1), contrast(brightness(img)), img)

    def saturation(t: Tensor) -> Tensor:
        return (s * t + (1 - s) * gray(t)).clamp(0, 1)

    out = saturation(contrast(brightness(img)))
    # torchvision draws a random order of the four; two fixed orders, picked per image, keep the
    # work batched (hue last or first)
    out = torch.where((u[:, 4] < 0.5).view(-1, 1, 1, 1), _shift_hue(out, hue), saturation(contrast(brightness(_shift_hue(img, hue)))))
    return torch.where(apply.view(-1, 1, 1, 1), out, img)


def _shift_hue(img: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images in [0, 1] by `shift` turns (per image), via HSV."""
    r, g, b = img.unbind(1)
    maxc, minc = img.max(1).values, img.min(1).values
    v, delta = maxc, maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6) % 1.0, torch.zeros_like(h))
    h = (h + shift) % 1.0
    i = torch.floor(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choose = lambda *c: torch.stack(c, 0).gather(0, i.unsqueeze(0))[0]  # noqa: E731
    return torch.stack([choose(v, q, p, p, t, v), choose(t, v, v, q, p, p), choose(p, p, t, v, v, q)], 1)


def _blur(img: Tensor, sigma: Tensor, apply: Tensor, kernel: int = 9) -> Tensor:
    """GaussianBlur(kernel, sigma) per image, separable, with reflect padding as torchvision."""
    n, C, H, W = img.shape
    offsets = torch.arange(kernel, device=img.device, dtype=img.dtype) - kernel // 2
    k = torch.exp(-0.5 * (offsets / sigma.view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # one kernel per image and channel
    flat = img.reshape(1, n * C, H, W)
    pad = kernel // 2
    out = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), k.view(n * C, 1, 1, kernel), groups=n * C)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="reflect"), k.view(n * C, 1, kernel, 1), groups=n * C)
    return torch.where(apply.view(-1, 1, 1, 1), out.view(n, C, H, W), img)


def info_nce(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent loss per model (K) for embeddings z1, z2 (K x B x D) of two views: each
    view's positive is the other view of its image, its negatives the other 2B - 2 views."""
    K, B, _ = z1.shape
    z = F.normalize(torch.cat([z1, z2], 1), dim=-1)  # K x 2B x D
    logits = z @ z.transpose(1, 2) / temperature
    eye = torch.eye(2 * B, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)
    return F.cross_entropy(logits.flatten(0, 1), target.repeat(K), reduction="none").view(K, 2 * B).mean(1)


def knn_accuracy(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, labels: Tensor, k: int = 20, temperature: float = 0.07,
    self_index: Tensor | None = None,
) -> Tensor:
    """Per model (K), how many queries (K x M x D, labels M) a weighted k-NN vote over a bank of
    embeddings (K x N x D, labels N) gets right; embeddings are L2-normalized here. `self_index`
    (M): each query's own place in the bank, left out of its vote (leave-one-out on the training
    images). Counts, not means, so callers can sum over chunks of queries."""
    N = bank.shape[1]
    classes = int(bank_labels.max()) + 1
    bank, queries = F.normalize(bank, dim=-1), F.normalize(queries, dim=-1)
    sim = queries @ bank.transpose(1, 2)  # K x M x N
    if self_index is not None:
        sim = sim.scatter(-1, self_index.view(1, -1, 1).expand(len(sim), -1, 1), float("-inf"))
    top, idx = sim.topk(min(k, N - (self_index is not None)), dim=-1)
    votes = torch.zeros(*idx.shape[:2], classes, device=sim.device, dtype=sim.dtype)
    votes.scatter_add_(-1, bank_labels[idx], (top / temperature).exp())
    return (votes.argmax(-1) == labels).sum(1)
