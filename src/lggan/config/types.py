"""The allowed values of every config field and option (Literal types, read through `choices`) and the numeric
ranges (`Range`): the leaf of the config package, imported by models, losses and data for their checks."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

# Every set of allowed values, declared once: config validation, `--set` parsing, the CLI's choices and its help
# all read these (via `choices`).
TaskName = Literal["semantic", "crossview"]
SemanticDatasetName = Literal["cityscapes", "ade20k", "coco-stuff", "custom", "synth-city"]
CrossViewDatasetName = Literal["crossview", "synth-views"]
DatasetName = Literal[SemanticDatasetName, CrossViewDatasetName]
LocalCombine = Literal["sum", "conv"]  # Eq. 3 / Eq. 4
ClassPool = Literal["image", "mask"]
GanMode = Literal["hinge", "vanilla"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]
InferenceAmpMode = Literal["auto", "bf16", "off"]  # lggan generate, evaluate, load_generator (no fp16: no GradScaler)
ChannelsLastMode = Literal["auto", "on", "off"]  # auto: on for CUDA and CPU bf16, off for CPU fp32 (precision.py)
Direction = Literal["a2g", "g2a"]
UpsamplingLayers = Literal["normal", "more", "most"]  # SPADE's num_upsampling_layers: start grid (H, W) / 2^5, 6, 7
UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
DiscriminatorArch = Literal["spade", "pix2pix"]  # SPADE's multiscale PatchGAN | pix2pix's PatchGAN (cross-view release)
# xavier_normal(gain) (semantic release) | normal(0, gain) (cross-view release) | He normal
InitKind = Literal["xavier", "normal", "kaiming"]
VggInput = Literal["raw", "imagenet"]  # the release feeds VGG19 raw [-1, 1] images; "imagenet" normalises first
Reduction = Literal["sum", "mean"]
Recipe = Literal["release", "paper", "custom"]
LrSchedule = Literal["linear", "spade", "pix2pix"]
StepOrder = Literal["d_then_g", "g_then_d", "one_forward"]
CropMode = Literal["center", "random"]
# `lggan export --format`: torch.jit.trace (.pt), torch.onnx.export (.onnx), torch.export (.pt2).
ExportFormat = Literal["torchscript", "onnx", "export"]
LabelPaletteName = Literal["cityscapes", "ade20k", "coco-stuff"]  # built-in colour -> label id palettes
# `lggan evaluate --metrics` (besides miou): pixel (Tables 1-2), AlexNet-Places365 (Tables 1-2), Inception (Table 3).
ImageMetricName = Literal["ssim", "psnr", "sd", "ssim_standard", "psnr_standard", "inception_score", "accuracy", "kl",
                          "fid", "kid"]
LabelProtocol = Literal["cityscapes", "ade20k", "identity"]  # label file values -> a segmenter's train ids


def choices(literal: Any) -> tuple[str, ...]:
    """The allowed values of one of the Literal types above."""
    return typing.get_args(literal)


@dataclass(frozen=True)
class Range:
    """The values a numeric config field may take: always finite, and within these bounds (None: unbounded).

    Declared next to the field's type (``lr_g: Annotated[float, POSITIVE]``); `validate` checks every field that has
    one, before any data, network or folder is touched."""

    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    lt: float | None = None  # value < lt

    def text(self) -> str:
        """The bounds as the error says them: '> 0', 'in [0, 1)'."""
        if self.ge is not None and self.lt is not None:
            return f"in [{self.ge:g}, {self.lt:g})"
        bounds = [f">= {self.ge:g}" if self.ge is not None else "", f"> {self.gt:g}" if self.gt is not None else "",
                  f"< {self.lt:g}" if self.lt is not None else ""]
        return " and ".join(b for b in bounds if b)

    def holds(self, value: float) -> bool:
        return (math.isfinite(value) and (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.lt is None or value < self.lt))


POSITIVE = Range(gt=0)  # learning rates, init gain, a time budget
NON_NEGATIVE = Range(ge=0)  # loss weights (0 switches a loss off), counts that may be 0
AT_LEAST_1 = Range(ge=1)  # widths, batch sizes, intervals
FRACTION = Range(ge=0, lt=1)  # Adam betas, EMA decay


def field_range(tp: Any) -> Range | None:
    """The Range declared in a field's ``Annotated[...]`` type, if any."""
    if typing.get_origin(tp) is Annotated:
        return next((m for m in tp.__metadata__ if isinstance(m, Range)), None)
    return None


# Paper Table 3 (right), declared once: the variants, in order.
AblationVariant = Literal["S1", "S2", "S3", "S4", "S5"]
ABLATION_VARIANTS: tuple[str, ...] = typing.get_args(AblationVariant)


SEMANTIC_DATASETS = choices(SemanticDatasetName)
CROSSVIEW_DATASETS = choices(CrossViewDatasetName)
