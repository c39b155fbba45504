"""Label maps for the benchmarks: street scenes from `render_scene`, with extra classes to reach a target count.

`render_scene` draws 10-13 of the Cityscapes classes per image (road, sidewalk, building, wall, fence, pole, traffic
light/sign, vegetation, terrain, sky, person, car).  Real Cityscapes frames show 15-20 and ADE20K frames 10-15, and the
cost of the sparse local branch depends on how many classes are present and how many 16x16 tiles each reaches, so:

* ``cityscapes``: render_scene's Cityscapes ids (0..33 of 35 channels), plus random ellipse "objects" with ids not yet
  present until the image holds a number of classes drawn uniformly from 15..20;
* ``ade20k``: render_scene's ids mapped to random distinct ids in 0..150 (a fresh random injective map per image),
  plus random ellipses of further unused ids until the image holds a number drawn uniformly from 10..15.

Each added ellipse has radii of 2-12 % of the image width/height and its own instance id.  The benchmark prints the
present-class counts and the fraction of (class, tile) pairs the sparse branch computes, so the result can be judged
against real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lggan.data.common import make_semantic_input
from lggan.data.synthetic import render_scene


@dataclass(frozen=True)
class LabelKind:
    name: str
    num_classes: int
    use_instance: bool  # Cityscapes feeds the instance-edge channel, ADE20K does not (config presets)
    present: tuple[int, int]  # inclusive range of the number of classes per image


KINDS = {
    35: LabelKind("cityscapes", 35, True, (15, 20)),
    151: LabelKind("ade20k", 151, False, (10, 15)),
}


def _add_blobs(rng: np.random.Generator, label: np.ndarray, instance: np.ndarray, new_ids: list[int]) -> None:
    """Paints one ellipse per id in new_ids (in place); retries a blob until its class keeps some pixels."""
    H, W = label.shape
    yy, xx = np.mgrid[0:H, 0:W]
    for k, cid in enumerate(new_ids):
        for _ in range(100):
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            ry, rx = rng.uniform(0.02, 0.12) * H, rng.uniform(0.02, 0.12) * W
            inside = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1
            if not inside.any():
                continue
            # Only paint where no other added blob lies, so every added class survives.
            keep = np.isin(label, new_ids[:k], invert=True) if k else np.ones_like(inside)
            region = inside & keep
            # The painted class must not wipe out a scene class entirely.
            covered = np.unique(label[region])
            if any(not (label[~region] == c).any() for c in covered):
                continue
            if region.any():
                label[region] = cid
                instance[region] = 100_000 + k
                break
        else:
            raise RuntimeError(f"could not place a blob of class {cid}")


def make_label_map(rng: np.random.Generator, num_classes: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One (label [H, W] int64, instance [H, W] int64) map of the kind for num_classes (35 or 151); size = (W, H)."""
    kind = KINDS[num_classes]
    label, instance, _ = render_scene(rng, size)
    label = label.astype(np.int64)
    instance = instance.astype(np.int64)
    if num_classes == 151:
        ids = np.unique(label)
        mapped = rng.choice(151, size=len(ids), replace=False)
        lut = np.zeros(256, np.int64)
        lut[ids] = mapped
        label = lut[label]
    present = set(np.unique(label).tolist())
    target = int(rng.integers(kind.present[0], kind.present[1] + 1))
    n_new = max(0, target - len(present))
    candidates = np.array([c for c in range(34 if num_classes == 35 else 151) if c not in present])
    new_ids = rng.choice(candidates, size=n_new, replace=False).tolist()
    _add_blobs(rng, label, instance, new_ids)
    return label, instance


def label_batch(num_classes: int, use_instance: bool, batch: int, size: tuple[int, int], seed: int
                ) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """(class ids [B,H,W] int64, instance ids [B,H,W] or None, classes present per image); image b is the same for
    every batch size (make_batch's seeds)."""
    if num_classes not in KINDS:
        raise SystemExit(f"label maps: {num_classes} classes not supported (benchmarks/labels.py has "
                         f"{', '.join(map(str, sorted(KINDS)))})")
    labels, instances, counts = [], [], []
    for b in range(batch):
        rng = np.random.default_rng(np.random.SeedSequence([seed, num_classes, b, *size]))
        label, instance = make_label_map(rng, num_classes, size)
        labels.append(torch.from_numpy(label))
        instances.append(torch.from_numpy(instance))
        counts.append(int(np.unique(label).size))
    return torch.stack(labels), (torch.stack(instances) if use_instance else None), counts


def make_batch(num_classes: int, batch: int, size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Generator input S [batch, semantic_nc, H, W] (float32, CPU) and the number of classes present per image."""
    label, instance, counts = label_batch(num_classes, KINDS[num_classes].use_instance, batch, size, seed)
    return make_semantic_input(label, num_classes, instance), counts
