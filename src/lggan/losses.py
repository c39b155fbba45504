"""LGGAN losses (§3.2, Eq. 2, 5, 8; SPADE's hinge / feature-matching / VGG terms) as small pure functions.

Discriminator outputs are either one prediction tensor or, for MultiscaleDiscriminator, a list (one entry per scale)
of lists of layer outputs whose last element is the prediction.  Loss weights (and skipping a term whose weight is 0)
are the trainer's job; every function here only computes its term.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lggan.config import GanMode, Reduction, VggInput, choices
from lggan.images import IMAGENET_MEAN, IMAGENET_STD
from lggan.models.class_conv import ClassImages

DOutput = torch.Tensor | Sequence[Sequence[torch.Tensor]]
GAN_MODES = choices(GanMode)
TV_REDUCTIONS = choices(Reduction)
VGG_INPUT_MODES = choices(VggInput)


# ----------------------------------------------------------------------------------------------- GAN terms (Eq. 8)

def hinge_d_real(pred: torch.Tensor) -> torch.Tensor:
    """Hinge loss of D on real samples: mean(relu(1 - D(x)))."""
    return F.relu(1 - pred).mean()


def hinge_d_fake(pred: torch.Tensor) -> torch.Tensor:
    """Hinge loss of D on generated samples: mean(relu(1 + D(G(s))))."""
    return F.relu(1 + pred).mean()


def hinge_g(pred: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: -mean(D(G(s)))."""
    return -pred.mean()


def bce_real(pred: torch.Tensor) -> torch.Tensor:
    """Vanilla GAN (Eq. 8, -log D) on logits that should say "real".

    The cross-view release puts a Sigmoid at the end of its PatchGAN and uses nn.BCELoss; on logits x,
    BCE-with-logits computes the same mean of -log sigmoid(x) (resp. -log(1 - sigmoid(x))) in a stable form.
    The two differ only where BCELoss clamps log(0) to -100, i.e. for |x| > ~100.
    """
    return F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))


def bce_fake(pred: torch.Tensor) -> torch.Tensor:
    """Vanilla GAN (Eq. 8, -log(1 - D)) on logits that should say "fake"."""
    return F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred))


def _predictions(outputs: DOutput) -> list[torch.Tensor]:
    """The prediction map of every scale (last layer output), or the single tensor given."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    preds = [scale[-1] if not isinstance(scale, torch.Tensor) else scale for scale in outputs]
    if not preds:
        raise ValueError("discriminator outputs are empty")
    return preds


def _per_scale_mean(fn, outputs: DOutput) -> torch.Tensor:
    # SPADE averages the per-scale losses over the scales.
    preds = _predictions(outputs)
    return sum(fn(p) for p in preds) / len(preds)


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"gan mode must be one of {GAN_MODES}, got {mode!r}")


def discriminator_loss(real: DOutput, fake: DOutput, mode: str = "hinge") -> torch.Tensor:
    """D's loss on a real/fake pair: hinge relu(1-D(x)) + relu(1+D(G)); vanilla 0.5 * (BCE real + BCE fake).

    Called once per generator output (I^C, I^G, I^L) with the same real prediction, the vanilla form summed over the
    three is the cross-view release's D loss: sum_out 0.5 * (BCE(D(fake_out), 0) + BCE(D(real), 1)), in which the
    real term weighs 3 * 0.5 = 1.5.
    """
    _check_mode(mode)
    if mode == "hinge":
        return _per_scale_mean(hinge_d_real, real) + _per_scale_mean(hinge_d_fake, fake)
    return 0.5 * (_per_scale_mean(bce_real, real) + _per_scale_mean(bce_fake, fake))


def generator_gan_loss(fake: DOutput, mode: str = "hinge") -> torch.Tensor:
    """G's adversarial loss: hinge -mean(D(G)); vanilla BCE(D(G), real)."""
    _check_mode(mode)
    return _per_scale_mean(hinge_g if mode == "hinge" else bce_real, fake)


def feature_matching_loss(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """SPADE's discriminator feature matching: sum over scales and intermediate layers of L1(fake, real), / num_d.

    The last output of every scale is the prediction and is left out; real features are detached.
    """
    if len(fake) != len(real) or not fake:
        raise ValueError(f"feature matching needs the same non-zero number of scales, got {len(fake)} and {len(real)}")
    total = 0.0
    for f_scale, r_scale in zip(fake, real):
        if len(f_scale) != len(r_scale):
            raise ValueError("feature matching: fake and real scales have different numbers of layers")
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake)


# ----------------------------------------------------------------------------------------------- reconstruction terms

def l1_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Image L1: mean |image - target|."""
    return F.l1_loss(image, target)


def tv_loss(image: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Total variation of image [B, C, H, W]: |vertical differences| + |horizontal differences|.

    reduction "mean": mean of each; "sum": sum of each over batch, channels and pixels, as the cross-view release's
    regulariser (weight 1e-6): sum |x[.., :, 1:] - x[.., :, :-1]| + sum |x[.., 1:, :] - x[.., :-1, :]|.
    """
    if reduction not in TV_REDUCTIONS:
        raise ValueError(f"tv_loss: reduction must be one of {TV_REDUCTIONS} (loss.tv_reduction), got {reduction!r}")
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()  # [B, C, H-1, W]
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()  # [B, C, H, W-1]
    if reduction == "sum":
        return dy.sum() + dx.sum()
    return dy.mean() + dx.mean()


def local_l1_loss(class_images: ClassImages | torch.Tensor, target: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 2: sum over groups i of mean_{b,c,h,w} |I_g * M_i - I^l_i| (each class group with its own mask M_i).

    class_images: the sparse ClassImages of the generator (no [B, G, 3, H, W] tensor is built) or a dense
    [B, G, 3, H, W] tensor; target I_g [B, 3, H, W]; masks [B, G, H, W]: the same group masks the generator used
    (`lggan.models.class_conv.group_masks`; the class masks themselves when there are no groups).  The mean is over
    the full tensor (not the mask area) and I^l_i is unmasked, as released: each branch is also pushed to 0 outside
    its group.

    Branch i is always paired with mask i.  The Cityscapes release does not do that for one branch: its return tuple
    puts label_3_26 in label_3_27's slot, so branch 27 (truck) is trained against the image masked with class 26's
    (car's) mask.  That bug is deliberately not reproduced.
    """
    if target.dim() != 4 or masks.dim() != 4 or masks.shape[0] != target.shape[0] or masks.shape[2:] != target.shape[2:]:
        raise ValueError(f"local L1: target [B, 3, H, W] and masks [B, C, H, W] must match, got "
                         f"{tuple(target.shape)} and {tuple(masks.shape)}")
    B, ch, H, W = target.shape
    masks = masks.to(target.dtype)
    if isinstance(class_images, torch.Tensor):
        if class_images.shape != (B, masks.shape[1], ch, H, W):
            raise ValueError(f"local L1: class images must be [B, C, 3, H, W] = {(B, masks.shape[1], ch, H, W)}, "
                             f"got {tuple(class_images.shape)}")
        return (target.unsqueeze(1) * masks.unsqueeze(2) - class_images).abs().sum() / target.numel()

    I = class_images
    C, T = I.num_classes, I.tile
    if (I.batch_size, I.height, I.width) != (B, H, W) or masks.shape[1] != C or I.const.shape[1] != ch:
        raise ValueError(f"local L1: class images are for B={I.batch_size}, C={C}, {I.height}x{I.width}, but target is "
                         f"{tuple(target.shape)} and masks {tuple(masks.shape)}")
    ny, nx = I.grid
    pad = (0, nx * T - W, 0, ny * T - H)
    # Tile views of the target and masks, gathered at the computed (sample, class, tile) entries: [N, 3|-, T, T].
    tgt = F.pad(target, pad).view(B, ch, ny, T, nx, T).permute(0, 2, 4, 1, 3, 5)[I.batch_idx, I.tile_y, I.tile_x]
    m = F.pad(masks, pad).view(B, C, ny, T, nx, T).permute(0, 1, 2, 4, 3, 5)[I.batch_idx, I.class_idx, I.tile_y, I.tile_x]
    inside = torch.zeros(ny * T, nx * T, dtype=target.dtype, device=target.device)
    inside[:H, :W] = 1
    inside = inside.view(ny, T, nx, T).permute(0, 2, 1, 3)[I.tile_y, I.tile_x]  # [N, T, T]
    I_l = I.const[I.class_idx].view(-1, ch, 1, 1) + I.delta  # I^l_i on the computed tiles
    exact = ((tgt * m.unsqueeze(1) - I_l).abs() * inside.unsqueeze(1)).sum()
    # Everywhere else M_i = 0 and I^l_i = tanh(b_i): each such pixel costs sum_c |tanh(b_i)_c|.
    covered = inside.sum((1, 2)).new_zeros(B * C).index_add(0, I.batch_idx * C + I.class_idx, inside.sum((1, 2)))
    uncovered = (H * W - covered).view(B, C)
    rest = (uncovered * I.const.abs().sum(1)).sum()
    return (exact + rest) / target.numel()


# ----------------------------------------------------------------------------------------------- classification (Eq. 5)

def class_ce_loss(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 5: cross-entropy of logits[b, i] against class i, averaged over the (sample, class) pairs with H_i = 1.

    logits [B, C, C], valid [B, C] bool.  Classes absent from a sample contribute nothing; with no valid pair at all
    the loss is 0 (still connected to the graph).
    """
    if logits.dim() != 3 or logits.shape[1] != logits.shape[2] or valid.shape != logits.shape[:2]:
        raise ValueError(f"class CE: logits must be [B, C, C] and valid [B, C], got {tuple(logits.shape)} and "
                         f"{tuple(valid.shape)}")
    B, C = valid.shape
    target = torch.arange(C, device=logits.device).expand(B, C)
    ce = F.cross_entropy(logits.reshape(B * C, C), target.reshape(-1), reduction="none").view(B, C)
    w = valid.to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp_min(1)


# ----------------------------------------------------------------------------------------------- VGG perceptual loss

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19 weights
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # relu1_1 .. relu5_1, as SPADE
# Slices of torchvision's vgg19().features ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)


def default_vgg19_path() -> Path:
    """Where torchvision's hub cache keeps the VGG19 weights: <torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _vgg19_features() -> nn.Sequential:
    """vgg19().features up to relu5_1 with torchvision's layer indices (so its checkpoint keys load)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers[: _VGG_SLICES[-1][1]])


class VGGLoss(nn.Module):
    """Perceptual loss: sum_k w_k * L1(VGG19_k(x), VGG19_k(y)) on relu1_1..relu5_1 (w = 1/32 .. 1), inputs in [-1, 1].

    input_mode "raw" (both releases, loss.vgg_input): the [-1, 1] images go into VGG19 as they are, with no ImageNet
    mean/std and no rescaling; "imagenet": mapped to [0, 1] and normalised with the ImageNet mean/std first.
    Each L1 is a mean over its feature map [B, C_k, H_k, W_k]; the target's features are computed without gradient
    (the release's .detach()).  Weights come from `weights_path` or the torch hub cache; nothing is downloaded.
    random_init=True (tests only) skips loading.
    """

    def __init__(self, weights_path: str | os.PathLike | None = None, random_init: bool = False,
                 input_mode: str = "raw"):
        super().__init__()
        if input_mode not in VGG_INPUT_MODES:
            raise ValueError(f"VGGLoss: input_mode must be one of {VGG_INPUT_MODES} (loss.vgg_input), "
                             f"got {input_mode!r}")
        self.input_mode = input_mode
        features = _vgg19_features()
        if not random_init:
            path = Path(weights_path) if weights_path is not None else default_vgg19_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"loss.vgg_weights: VGG19 weights not found at {path}: put torchvision's {VGG19_FILE} "
                    f"(ImageNet VGG19) in the cache folder {default_vgg19_path().parent} or pass "
                    "--set loss.vgg_weights=PATH; --set loss.vgg=0 trains without the VGG loss (lggan never "
                    "downloads weights)")
            from .metrics.files import load_weights_file

            # Tensors and plain containers only (weights_only=True): a pickle naming other objects could run code.
            state = load_weights_file(path, "VGG19 weights (loss.vgg_weights)")
            if not isinstance(state, dict):
                raise ValueError(f"VGG19 weights {path}: not a state dict (found {type(state).__name__})")
            prefix = "features."
            wanted = {k[len(prefix):]: v for k, v in state.items()
                      if isinstance(k, str) and k.startswith(prefix) and k.split(".")[1].isdigit()
                      and int(k.split(".")[1]) < len(features)}
            missing, _ = features.load_state_dict(wanted, strict=False)
            if missing:
                raise ValueError(f"VGG19 weights {path}: not a torchvision vgg19 state dict (missing features.{missing[0]})")
        self.slices = nn.ModuleList(features[a:b] for a, b in _VGG_SLICES)
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGLoss:
        # A fixed feature extractor: stays in eval mode whatever the trainer does.
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1 .. relu5_1 activations of an image x [B, 3, H, W] in [-1, 1] (see input_mode)."""
        h = x if self.input_mode == "raw" else ((x + 1) / 2 - self.mean) / self.std
        out = []
        for s in self.slices:
            h = s(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fy = self.features(y)
        fx = self.features(x)
        return sum(w * F.l1_loss(a, b) for w, a, b in zip(VGG_LAYER_WEIGHTS, fx, fy))


__all__ = [
    "GAN_MODES",
    "TV_REDUCTIONS",
    "VGG_INPUT_MODES",
    "VGG_LAYER_WEIGHTS",
    "VGGLoss",
    "bce_fake",
    "bce_real",
    "class_ce_loss",
    "default_vgg19_path",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_gan_loss",
    "hinge_d_fake",
    "hinge_d_real",
    "hinge_g",
    "l1_loss",
    "local_l1_loss",
    "tv_loss",
]
