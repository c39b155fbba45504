"""The traceable inference graphs of the two generators (`lggan export`): class ids in, I^C out, one-hot maps,
instance edges and class masks computed inside, the local branch on its dense per-class path.

Each task picks its graph (`Task.export_graph`); `lggan export` only calls the graph's methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _one_hot(label: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """[B, H, W] ids -> [B, C, H, W] float one-hot by comparison (traceable; out-of-range ids give zeros)."""
    return (label.unsqueeze(1) == class_ids).to(torch.float32)


def _edges(instance: torch.Tensor) -> torch.Tensor:
    """Instance-edge map [B, 1, H, W] (1 where a 4-neighbour has another id), as lggan.data.instance_edges, in
    out-of-place ops that trace and export."""
    h = (instance[:, :, 1:] != instance[:, :, :-1]).to(torch.float32)  # [B, H, W-1]
    v = (instance[:, 1:, :] != instance[:, :-1, :]).to(torch.float32)  # [B, H-1, W]
    e = F.pad(h, (1, 0)) + F.pad(h, (0, 1)) + F.pad(v, (0, 0, 1, 0)) + F.pad(v, (0, 0, 0, 1))
    return (e > 0).to(torch.float32).unsqueeze(1)


class SemanticExport(nn.Module):
    """LGGANGenerator's inference path: label (+ instance) ids -> I^C, with the dense local branch."""

    def __init__(self, generator: nn.Module, use_instance: bool):
        super().__init__()
        self.generator = generator
        self.use_instance = use_instance
        self.register_buffer("class_ids", torch.arange(generator.num_classes).view(1, -1, 1, 1), persistent=False)

    label_note = ""  # every id outside 0..C-1 gives an all-zero one-hot column

    def input_names(self) -> list[str]:
        return ["label", "instance"] if self.use_instance else ["label"]

    def example_inputs(self, size: tuple[int, int], batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Random class ids [B, H, W] (and instance ids) at size (W, H)."""
        w, h = size
        label = torch.randint(0, self.generator.num_classes, (batch, h, w), generator=gen)
        return (label, torch.randint(0, 4, (batch, h, w), generator=gen)) if self.use_instance else (label,)

    def synthesizer_arguments(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
        """The Synthesizer's (label, instance, aerial) for the same inputs."""
        return inputs

    def forward(self, label: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        from lggan.models.class_conv import group_masks
        from lggan.models.weight_map import fuse

        G = self.generator
        S = _one_hot(label, self.class_ids)
        if self.use_instance:
            S = torch.cat([S, _edges(label if instance is None else instance)], 1)
        E = G.encoder(S)
        I_G = G.global_generator(E.deep, S)
        if not G.use_local:
            return I_G
        I_L = G.local.forward_dense(E.features, group_masks(S[:, : G.num_classes], G.local_groups))
        if not G.use_weight_map:
            return 0.5 * I_G + 0.5 * I_L
        W_l, W_g = G.weight_map(E.features)
        return fuse(I_G, I_L, W_g, W_l)


class CrossViewExport(nn.Module):
    """CrossViewGenerator's inference path: (aerial input, target class ids) -> I^C, with the dense local branch."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.register_buffer("class_ids", torch.arange(generator.num_classes).view(1, -1, 1, 1), persistent=False)

    label_note = " (others: void)"

    def input_names(self) -> list[str]:
        return ["aerial", "label"]

    def example_inputs(self, size: tuple[int, int], batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """A random aerial input [B, 6, H, W] in [-1, 1] and random class ids [B, H, W] at size (W, H)."""
        w, h = size
        label = torch.randint(0, self.generator.num_classes, (batch, h, w), generator=gen)
        return torch.rand(batch, self.generator.in_channels, h, w, generator=gen) * 2 - 1, label

    def synthesizer_arguments(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
        """The Synthesizer's (label, instance, aerial) for the same inputs."""
        aerial, label = inputs
        return label, None, aerial

    def forward(self, aerial: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        from lggan.models.weight_map import fuse

        G = self.generator
        E = G.encoder(aerial).features
        I_G = G.global_generator(E)
        if not G.use_local:
            return I_G
        I_L = G.local.forward_dense(E, _one_hot(label, self.class_ids))  # void (255) -> all-zero masks
        if not G.use_weight_map:
            return 0.5 * I_G + 0.5 * I_L
        W_l, W_g = G.weight_map(E)
        return fuse(I_G, I_L, W_g, W_l)
