"""Residual block with reflect padding and instance norm, used by G_l (§3.2; official resnet_blocks1..9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.checkpointing import CheckpointableBlock


class ResidualBlock(CheckpointableBlock):
    """x + IN(conv2(pad(ReLU(IN(conv1(pad(x))))))) with reflect padding 1 and 3x3 convs.

    With `checkpointing` on (train.activation_checkpointing) its activations are recomputed in the backward pass.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, channels, h, w] -> [B, channels, h, w]."""
        h = F.relu(F.instance_norm(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        h = F.instance_norm(self.conv2(F.pad(h, (1, 1, 1, 1), mode="reflect")))
        return x + h
