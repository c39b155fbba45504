"""The config itself: one dataclass per section (data, model, loss, train) and `Config`, its JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from ..io import atomic_write_text
from .coercion import set_field
from .types import (
    AT_LEAST_1, AmpMode, ChannelsLastMode, ClassPool, CropMode, DatasetName, Direction, DiscriminatorArch, FRACTION,
    GanMode, InitKind, LocalCombine, LrSchedule, NON_NEGATIVE, POSITIVE, Range, Recipe, Reduction,
    StepOrder, TaskName, UpsamplingLayers, VggInput,
)

# Fields that shape the networks' weights or what they mean: a resumed run may not change them.
ARCHITECTURE_FIELDS = ("model.", "data.num_classes", "data.use_instance")


@dataclass
class DataConfig:
    """Which data, where, and how it is resized/cropped. Sizes are (width, height)."""

    dataset: DatasetName = "synth-city"
    root: str | None = None  # None: the built-in synthetic data in the cache folder
    # One-hot channels of the label map (the local branch has one generator per class). None: not set yet (the
    # `custom` preset leaves it to the user); a run needs it.
    num_classes: Annotated[int | None, Range(ge=2)] = 35
    use_instance: bool = True  # adds the instance-edge channel to the generator input
    dontcare: Annotated[int | None, NON_NEGATIVE] = None  # custom datasets: label value meaning "don't care"
    load_size: Annotated[tuple[int, int], AT_LEAST_1] = (256, 128)
    crop_size: Annotated[tuple[int, int] | None, AT_LEAST_1] = None  # None: no random crop
    flip: bool = True
    num_workers: Annotated[int, NON_NEGATIVE] = 2
    direction: Direction = "a2g"  # cross-view only: a2g (aerial -> ground) or g2a
    # Cross-view evaluation crop: the release crops at random at test time too (here seeded by train.seed);
    # "center" is the deterministic alternative.
    test_crop: CropMode = "center"
    # The palette colour label maps are read through (lggan.data.palette.LabelPalette): a built-in name or a JSON
    # file. Custom semantic data: colour label images -> label ids (LabelPaletteName; None: single-channel ids only).
    # Cross-view: the map panels -> classes, e.g. selectiongan-cvusa for 4-panel SelectionGAN files (None: the
    # release's gray codes for 6-panel files, the Cityscapes colour groups for 4-panel ones).
    palette: str | None = None

    @property
    def semantic_nc(self) -> int:
        """Channels of the generator input S: one-hot classes (+1 instance edges)."""
        return self.num_classes + (1 if self.use_instance else 0)


@dataclass
class ModelConfig:
    """Generator/discriminator architecture; at ngf = ndf = 64 the shapes equal the official release."""

    task: TaskName = "semantic"
    ngf: Annotated[int, AT_LEAST_1] = 64
    ndf: Annotated[int, AT_LEAST_1] = 64
    spade_hidden: Annotated[int, AT_LEAST_1] = 128
    num_res_blocks: Annotated[int, NON_NEGATIVE] = 9
    use_local: bool = True  # False: S1, global generator only
    local_combine: LocalCombine = "conv"  # "sum" (Eq. 3) or "conv" (Eq. 4)
    use_weight_map: bool = True  # False: fixed equal fusion weights (S2-S4)
    class_pool: ClassPool = "image"  # "image" (official) or "mask" (paper's semantic-guided pooling)
    # Groups of label channels that the local branch, the classifier and Eq. 4's fusion run over. None: one group
    # per class channel. N: channels 0..N-2 one group each, all later channels summed into group N-1, which the
    # classifier does not score (the ADE20K release: N = 52 over 151 channels).
    local_groups: Annotated[int | None, Range(ge=2)] = None
    num_upsampling_layers: UpsamplingLayers = "normal"  # the global generator's layout (Cityscapes release: more)
    num_d: Annotated[int, AT_LEAST_1] = 2
    d_layers: Annotated[int, AT_LEAST_1] = 4
    discriminator: DiscriminatorArch = "spade"
    init: InitKind = "xavier"
    init_gain: Annotated[float, POSITIVE] = 0.02


@dataclass
class LossConfig:
    """Loss weights; a weight of 0 switches the term off (and skips its computation)."""

    gan_mode: GanMode = "hinge"  # hinge (semantic synthesis) | vanilla (cross-view)
    gan: Annotated[float, NON_NEGATIVE] = 1.0
    feat_match: Annotated[float, NON_NEGATIVE] = 10.0
    vgg: Annotated[float, NON_NEGATIVE] = 10.0
    class_ce: Annotated[float, NON_NEGATIVE] = 1.0
    local_l1: Annotated[float, NON_NEGATIVE] = 1.0
    image_l1: Annotated[float, NON_NEGATIVE] = 0.0
    tv: Annotated[float, NON_NEGATIVE] = 0.0
    tv_reduction: Reduction = "mean"  # the cross-view release sums |dx| + |dy| over batch, channels and pixels
    vgg_input: VggInput = "raw"
    vgg_weights: str | None = None  # local VGG19 file; None: the torch hub cache


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping; `recipe` fills the optimiser fields as a released script or the paper has them."""

    batch_size: Annotated[int, AT_LEAST_1] = 1  # the global batch: split evenly over the processes of a distributed run
    # Stop after this many iterations in total (None: the epoch schedule).
    iterations: Annotated[int | None, NON_NEGATIVE] = None
    epochs_const: Annotated[int, NON_NEGATIVE] = 100  # constant lr for this many epochs ...
    epochs_decay: Annotated[int, NON_NEGATIVE] = 100  # ... then decay to 0 over these (how: lr_schedule)
    recipe: Recipe = "custom"  # setting it (--set train.recipe=paper) fills lr_g, lr_d, beta1, beta2, lr_schedule
    lr_g: Annotated[float, POSITIVE] = 2e-4
    lr_d: Annotated[float, POSITIVE] = 2e-4
    beta1: Annotated[float, FRACTION] = 0.0
    beta2: Annotated[float, FRACTION] = 0.999
    # linear: per iteration; spade: drops once per epoch after epochs_const (semantic release); pix2pix: the
    # cross-view release's per-epoch factor 1 - max(0, e + 2 - epochs_const) / (epochs_decay + 1)
    lr_schedule: LrSchedule = "linear"
    # d_then_g: D on fakes of the current G, then the G step; g_then_d: the G step, then D on fakes regenerated by
    # the updated G (semantic release); one_forward: one G forward, D on its detached fakes, G step on the same
    # forward (cross-view release)
    step_order: StepOrder = "d_then_g"
    seed: Annotated[int, NON_NEGATIVE] = 0
    # auto: bf16 autocast where the device has bf16 natively (CUDA compute capability >= 8; CPUs with AMX-BF16 or
    # AVX512-BF16), fp32 elsewhere | bf16: always (emulated, slower, where not native) | fp16: CUDA only, with a
    # GradScaler | off: fp32. Weights, optimiser state, losses and norm statistics stay fp32 in every mode.
    amp: AmpMode = "auto"
    # G, the discriminators and their inputs in channels-last (NHWC) memory: auto = on for CUDA and CPU bf16, off
    # for CPU fp32 (measured slower there; lggan.precision.channels_last_decision)
    channels_last: ChannelsLastMode = "auto"
    # Recompute the SPADE blocks of G_g and the residual blocks (G_l; the cross-view trunk) in the backward pass
    # instead of keeping their activations: less memory, about one extra forward of those blocks per step
    activation_checkpointing: bool = False
    compile: bool = False  # torch.compile G and the discriminators (first steps slower while it compiles)
    device: str = "auto"
    log_every: Annotated[int, AT_LEAST_1] = 10
    sample_every: Annotated[int, AT_LEAST_1] = 500
    checkpoint_every: Annotated[int, AT_LEAST_1] = 1000
    keep_last: Annotated[int, AT_LEAST_1] = 3
    ema_decay: Annotated[float, FRACTION] = 0.0  # 0 disables the EMA copy of G
    max_nonfinite: Annotated[int, AT_LEAST_1] = 10  # consecutive non-finite steps before training stops
    num_samples: Annotated[int, AT_LEAST_1] = 4  # validation maps shown in each sample grid
    progress: bool = True
    threads: Annotated[int, NON_NEGATIVE] = 0  # CPU threads for PyTorch's kernels; 0 keeps PyTorch's default
    # Stop when this many seconds of training (evaluation and start-up excluded) have passed in total, counted
    # across --resume: the wall-clock budget of `lggan ablation --budget 10min`. None: no time limit.
    max_seconds: Annotated[float | None, POSITIVE] = None
    # Every eval_every iterations (0: never) score G (its EMA copy when there is one) on the first eval_images
    # images of the evaluation split with the built-in segmenter at eval_segmenter (a .safetensors file from
    # `lggan train-segmenter`): mIoU and pixel accuracy go to log.jsonl (kind "eval") and TensorBoard.
    eval_every: Annotated[int, NON_NEGATIVE] = 0
    eval_images: Annotated[int, AT_LEAST_1] = 32
    eval_segmenter: str | None = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        cfg = cls()
        d = upgrade_legacy(d)
        for section, values in d.items():
            if section == "preset":
                cfg.preset = values
                continue
            if not hasattr(cfg, section) or not dataclasses.is_dataclass(getattr(cfg, section)):
                raise ValueError(f"config: unknown section {section!r}")
            for key, value in values.items():
                set_field(getattr(cfg, section), f"{section}.{key}", key, value)
        return cfg

    def save_json(self, path: str | os.PathLike) -> None:
        """Writes the resolved config atomically (temp file + rename)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")  # strict JSON

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "Config":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid config JSON ({e})") from None


def upgrade_legacy(d: dict[str, Any]) -> dict[str, Any]:
    """A config.json of lggan 0.1.0 (train.lr + train.ttur) in today's fields (train.lr_g, lr_d, beta2)."""
    train = dict(d.get("train") or {})
    if "lr" not in train and "ttur" not in train:
        return d
    lr, ttur = float(train.pop("lr", 2e-4)), bool(train.pop("ttur", False))
    train.update(lr_g=lr / 2, lr_d=lr * 2, beta2=0.9) if ttur else train.update(lr_g=lr, lr_d=lr)
    return {**d, "train": train}


SECTION_NAMES = {DataConfig: "data", ModelConfig: "model", LossConfig: "loss", TrainConfig: "train"}
