"""Typed configuration: one dataclass per concern, named presets, `--set a.b=value` overrides, JSON round trip."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from .io import atomic_write_text, one_line

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
InitKind = Literal["xavier", "normal", "kaiming"]  # xavier_normal(gain) (semantic release) | normal(0, gain) (cross-view)
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


SEMANTIC_DATASETS = choices(SemanticDatasetName)
CROSSVIEW_DATASETS = choices(CrossViewDatasetName)
# The task each dataset belongs to (the first TaskName is semantic synthesis, the second cross-view translation).
DATASET_TASK: dict[str, str] = {**{d: choices(TaskName)[0] for d in SEMANTIC_DATASETS},
                                **{d: choices(TaskName)[1] for d in CROSSVIEW_DATASETS}}
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
    iterations: Annotated[int | None, NON_NEGATIVE] = None  # stop after this many iterations in total (None: the epoch schedule)
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
        d = _upgrade(d)
        for section, values in d.items():
            if section == "preset":
                cfg.preset = values
                continue
            if not hasattr(cfg, section) or not dataclasses.is_dataclass(getattr(cfg, section)):
                raise ValueError(f"config: unknown section {section!r}")
            for key, value in values.items():
                _set_field(getattr(cfg, section), f"{section}.{key}", key, value)
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


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """A config.json of lggan 0.1.0 (train.lr + train.ttur) in today's fields (train.lr_g, lr_d, beta2)."""
    train = dict(d.get("train") or {})
    if "lr" not in train and "ttur" not in train:
        return d
    lr, ttur = float(train.pop("lr", 2e-4)), bool(train.pop("ttur", False))
    train.update(lr_g=lr / 2, lr_d=lr * 2, beta2=0.9) if ttur else train.update(lr_g=lr, lr_d=lr)
    return {**d, "train": train}


def size_arg(text: str) -> tuple[int, int]:
    """argparse type of every WIDTHxHEIGHT option (--size, --eval-size): positive integers."""
    import argparse

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 256x128, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return w, h


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Converts a JSON value (or a string from the command line) to the field's declared type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{name}={value}: must be one of {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(name, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{name}: cannot be {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.lower().replace("x", ",").split(",") if v]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{name}={value}: must be {len(args)} values like 256x128")
        return tuple(_coerce(name, v, a) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name}={value}: must be true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{name}={value}: must be an integer")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value}: must be an integer") from None
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{name}={value}: must be a finite integer")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value}: must be a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}={value}: must be a string")
        return value
    return value


def _set_field(obj: Any, full_name: str, key: str, value: Any) -> None:
    hints = typing.get_type_hints(type(obj))
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(obj))
        raise ValueError(f"config: unknown field {full_name!r} (known: {known})")
    setattr(obj, key, _coerce(full_name, value, hints[key]))


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Applies `section.field=value` strings (the CLI's --set) to a copy of cfg."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected section.field=value, e.g. train.batch_size=8")
        name, value = item.split("=", 1)
        parts = name.strip().split(".")
        if len(parts) != 2 or not dataclasses.is_dataclass(getattr(cfg, parts[0], None)):
            raise ValueError(f"--set {item!r}: expected section.field with section in data, model, loss, train")
        if name.strip() == "train.recipe":  # a recipe fills its fields now; later --set items refine them
            apply_recipe(cfg, value.strip())
            continue
        _set_field(getattr(cfg, parts[0]), name.strip(), parts[1], value.strip())
    if not _recipe_still_holds(cfg):
        cfg.train.recipe = "custom"  # the config says so when a field of the recipe was changed
    validate(cfg)
    return cfg


CONFIG_SECTIONS = ("data", "model", "loss", "train")
YAML_SUFFIXES = (".yaml", ".yml")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; this bounds the work of reading a wrong file
MAX_MESSAGE_CHARS = 300  # a parser's message quoted in an error: one line, cut to this


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The sections of a --config file: JSON, or YAML (.yaml/.yml, needs PyYAML), e.g. {"train": {"batch_size": 8}}.

    Any subset of the sections and fields of config.json; a "preset" key names the preset to start from.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {p}: no such file")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"--config {p}: {p.stat().st_size:,} bytes; a config file is at most "
                         f"{MAX_CONFIG_BYTES:,} bytes")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {p}: cannot be read ({one_line(e, MAX_MESSAGE_CHARS)})") from None
    if p.suffix.lower() in YAML_SUFFIXES:
        try:
            import yaml
        except ImportError:
            raise ValueError(f"--config {p}: reading YAML needs the PyYAML package, which is not installed "
                             "(pip install pyyaml), or write the file as JSON") from None
        try:
            # Aliases (*name) are refused before anything is built: nested ones expand exponentially (a few hundred
            # bytes can stand for gigabytes), and a config has no use for them.
            if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise ValueError(f"--config {p}: YAML aliases (*name) are not supported; write the values out")
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"--config {p}: not valid YAML ({one_line(e, MAX_MESSAGE_CHARS)})") from None
    else:
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as e:
            hint = " (YAML files need the suffix .yaml or .yml)" if p.suffix.lower() != ".json" else ""
            raise ValueError(f"--config {p}: not valid JSON ({one_line(e, MAX_MESSAGE_CHARS)}){hint}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {p}: expected a mapping of sections ({', '.join(CONFIG_SECTIONS)}), got "
                         f"{type(data).__name__}")
    for section, values in data.items():
        if section == "preset":
            if not isinstance(values, str):
                raise ValueError(f"--config {p}: preset: expected a preset name, got {values!r}")
            continue
        if section not in CONFIG_SECTIONS:
            raise ValueError(f"--config {p}: unknown section {section!r} (known: {', '.join(CONFIG_SECTIONS)}, "
                             "preset)")
        if not isinstance(values, dict):
            raise ValueError(f"--config {p}: section {section!r}: expected a mapping of field: value, got "
                             f"{values!r}")
    return data


def apply_config_file(cfg: Config, path: str | os.PathLike) -> Config:
    """Applies the sections of a --config file to a copy of cfg (the CLI: after --preset, before --set).

    Fields are applied as --set applies them (typed and checked); train.recipe first, so that the file's other
    train fields refine it. The result is not validated yet: `apply_overrides` does that once at the end.
    """
    data = _upgrade(read_config_file(path))
    cfg = copy.deepcopy(cfg)
    try:
        train = data.get("train") or {}
        if "recipe" in train:
            apply_recipe(cfg, train["recipe"])
        for section, values in data.items():
            if section == "preset":
                continue
            for key, value in values.items():
                if section == "train" and key == "recipe":
                    continue
                _set_field(getattr(cfg, section), f"{section}.{key}", key, value)
    except ValueError as e:
        raise ValueError(f"--config {path}: {str(e).removeprefix('config: ')}") from None
    if not _recipe_still_holds(cfg):
        cfg.train.recipe = "custom"
    return cfg


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    """{"model": {"ngf": 64}} -> {"model.ngf": 64}, values normalised as JSON stores them (tuples -> lists)."""
    flat: dict[str, Any] = {}
    for section, values in json.loads(json.dumps(d)).items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[section] = values
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose value differs between two config dicts: {"train.lr": (old, new)} (absent = None)."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def architecture_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes among ARCHITECTURE_FIELDS (a prefix ending in "." covers its whole section)."""
    return {k: v for k, v in config_changes(old, new).items()
            if any(k.startswith(f) if f.endswith(".") else k == f for f in ARCHITECTURE_FIELDS)}


def missing_fields(cfg: Config) -> list[str]:
    """Fields a preset leaves for the user to set (the `custom` preset: data.num_classes)."""
    return ["data.num_classes"] if cfg.data.num_classes is None else []


def validate(cfg: Config, partial: bool = False) -> None:
    """Rejects inconsistent settings early, with the field's name.

    partial: fields still to be set by the user (`missing_fields`, e.g. the `custom` preset's data.num_classes) are
    allowed, and the checks that need them are skipped; a config that a run uses is validated in full.
    """
    if cfg.data.num_classes is None:
        if not partial:
            raise ValueError(
                f"data.num_classes is not set: the {cfg.data.dataset} dataset needs the number of classes of its "
                "label maps: --set data.num_classes=N (label values 0..N-1; N + 1 with data.dontcare), or "
                "data.num_classes in --config")
        cfg = copy.deepcopy(cfg)
        cfg.data.num_classes = max(2, cfg.model.local_groups or 2)  # a stand-in: the other fields are still checked
    for section in (cfg.data, cfg.model, cfg.loss, cfg.train):
        for name, tp in typing.get_type_hints(type(section), include_extras=True).items():
            full, value = f"{_SECTION_NAMES[type(section)]}.{name}", getattr(section, name)
            bare = typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp
            if typing.get_origin(bare) is Literal:
                _coerce(full, value, bare)
            check_range(full, value, field_range(tp))
    if cfg.train.eval_every and not cfg.train.eval_segmenter:
        raise ValueError(f"train.eval_every={cfg.train.eval_every} needs train.eval_segmenter (a .safetensors file "
                         "from `lggan train-segmenter`)")
    if DATASET_TASK[cfg.data.dataset] != cfg.model.task:
        raise ValueError(
            f"data.dataset={cfg.data.dataset!r} does not fit model.task={cfg.model.task!r} "
            f"(it is a {DATASET_TASK[cfg.data.dataset]} dataset)"
        )
    if cfg.data.dataset in SEMANTIC_DATASETS:
        w, h = cfg.data.crop_size or cfg.data.load_size
        step = 2 ** UPSAMPLINGS[cfg.model.num_upsampling_layers]
        if w % step or h % step:
            raise ValueError(
                f"data size {w}x{h}: the SPADE global generator with model.num_upsampling_layers="
                f"{cfg.model.num_upsampling_layers!r} needs width and height divisible by {step}"
            )
    # Fields that only one task's networks read: set for the other task they would be silently ignored.
    semantic_only = {"model.local_groups": (cfg.model.local_groups, None),
                     "model.num_upsampling_layers": (cfg.model.num_upsampling_layers, "normal"),
                     "model.class_pool": (cfg.model.class_pool, "image"),
                     "loss.class_ce": (cfg.loss.class_ce, 0.0)}
    crossview_only = {"model.discriminator": (cfg.model.discriminator, "spade")}
    other = crossview_only if cfg.data.dataset in SEMANTIC_DATASETS else semantic_only
    for name, (value, neutral) in other.items():
        if value != neutral:
            raise ValueError(f"{name}={value!r} does not apply to model.task={cfg.model.task!r} (leave it at "
                             f"{neutral!r})")
    groups = cfg.model.local_groups
    if groups is not None and groups > cfg.data.num_classes:
        raise ValueError(f"model.local_groups={groups}: must be between 2 and data.num_classes="
                         f"{cfg.data.num_classes} (or none: one group per class)")
    if cfg.train.compile and cfg.train.activation_checkpointing:
        # The recompute guard (spectral norm's u, v and BN statistics updated once) runs in eager mode only; under
        # torch.compile the recompute happens inside the compiled graph, where it has not been verified.
        raise ValueError("train.compile=true: not supported together with train.activation_checkpointing=true "
                         "(set one of them to false)")


def check_range(name: str, value: Any, allowed: Range | None) -> None:
    """Raises `NAME=VALUE: must be ...` when a number (or any number of a size tuple) lies outside `allowed`."""
    if allowed is None or value is None:
        return
    for v in value if isinstance(value, tuple) else (value,):
        if not allowed.holds(v):
            kind = "an integer" if isinstance(v, int) else "a finite number"
            shown = "x".join(map(str, value)) if isinstance(value, tuple) else value
            raise ValueError(f"{name}={shown}: must be {kind} {allowed.text()}")


_SECTION_NAMES = {DataConfig: "data", ModelConfig: "model", LossConfig: "loss", TrainConfig: "train"}

# ---------------------------------------------------------------------------------------------------------
# Presets. Each is a function so that every call returns a fresh object.


# ---------------------------------------------------------------------------------------------------------
# Recipes: the optimiser settings of the released scripts and of the paper's text, per task.

RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    # S/train_*.sh run SPADE's TTUR: G lr 2e-4 / 2, D lr 2e-4 * 2, Adam betas hard-coded (0, 0.9); the lr drops once
    # per epoch after niter; the G step comes first and the D step regenerates the fakes with the updated G.
    ("semantic", "release"): dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, lr_schedule="spade",
                                  step_order="g_then_d"),
    # The paper (§4.2): Adam with beta1 0, beta2 0.999, no TTUR (GauGAN's lr 2e-4 for both).
    ("semantic", "paper"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.999, lr_schedule="spade",
                                step_order="g_then_d"),
    # X/train_*.sh: Adam (0.5, 0.999), lr 2e-4 for G and for D1+D2, pix2pix's "lambda" decay, one G forward.
    ("crossview", "release"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix",
                                   step_order="one_forward"),
    # The paper's cross-view text gives no other optimiser settings than the release's.
    ("crossview", "paper"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix",
                                 step_order="one_forward"),
}


def apply_recipe(cfg: Config, recipe: str) -> Config:
    """Fills the optimiser fields of `cfg.train` from a named recipe of its task ("custom" leaves them)."""
    _coerce("train.recipe", recipe, Recipe)
    if recipe != "custom":
        for key, value in RECIPES[(cfg.model.task, recipe)].items():
            setattr(cfg.train, key, value)
    cfg.train.recipe = recipe
    return cfg


def _recipe_still_holds(cfg: Config) -> bool:
    if cfg.train.recipe == "custom":
        return True
    values = RECIPES[(cfg.model.task, cfg.train.recipe)]
    return all(getattr(cfg.train, k) == v for k, v in values.items())


# ---------------------------------------------------------------------------------------------------------
# Presets. Each is a function so that every call returns a fresh object.


def _build(**sections: dict[str, Any]) -> Config:
    cfg = Config()
    for section, values in sections.items():
        for k, v in values.items():
            setattr(getattr(cfg, section), k, v)
    return cfg


def _semantic_release(dataset: str, num_classes: int | None, use_instance: bool, **kw: dict[str, Any]) -> Config:
    """S/train_*.sh: 100 + 100 epochs, hinge + feature matching 10 + VGG 10 (raw input) + class CE 1 + local L1 1,
    image L1 off (--no_l1_loss), xavier init (gain 0.02), SPADE's multiscale D, TTUR."""
    cfg = _build(data=dict(dataset=dataset, num_classes=num_classes, use_instance=use_instance, flip=True),
                 loss=dict(gan_mode="hinge", gan=1.0, feat_match=10.0, vgg=10.0, vgg_input="raw", class_ce=1.0,
                           local_l1=1.0, image_l1=0.0),
                 train=dict(epochs_const=100, epochs_decay=100))
    for section, values in kw.items():
        for k, v in values.items():
            setattr(getattr(cfg, section), k, v)
    return apply_recipe(cfg, "release")


def _cityscapes() -> Config:
    # `fixed` preprocessing: every image resized to 512x256; the global generator starts from a 4x8 grid ("more").
    return _semantic_release("cityscapes", 35, True, data=dict(load_size=(512, 256)),
                             model=dict(num_upsampling_layers="more"), train=dict(batch_size=8))


def _ade20k() -> Config:
    # resize_and_crop: 286 -> random 256 crop at training (evaluation: 256, no crop); 52 local groups, "normal".
    return _semantic_release("ade20k", 151, False, data=dict(load_size=(286, 286), crop_size=(256, 256)),
                             model=dict(local_groups=52), train=dict(batch_size=24))


def _coco_stuff() -> Config:
    # Not in the LGGAN release: SPADE's COCO-Stuff settings with the semantic release's recipe.
    return _semantic_release("coco-stuff", 183, True, data=dict(load_size=(256, 256)), train=dict(batch_size=32))


def _synth() -> Config:
    # Small widths, 128x64 images and a short schedule (3 epochs of the 500 synthetic scenes, about 1,500 images)
    # so that the default run ends within 20 minutes on a 2-core CPU. VGG is off because its ImageNet weights
    # cannot be downloaded at run time (switch it on with loss.vgg=10 once the file is in the torch hub cache); a
    # plain image L1 term helps the short schedule converge. One G forward per iteration (the cross-view release's
    # order): measured 1.2x faster per iteration than d_then_g on a 2-core CPU (1.43 vs 1.74 s at batch 4).
    return _build(
        data=dict(dataset="synth-city", num_classes=35, use_instance=True, load_size=(128, 64), num_workers=1),
        model=dict(ngf=16, ndf=16, spade_hidden=32, num_res_blocks=3),
        loss=dict(vgg=0.0, image_l1=1.0),
        train=dict(batch_size=4, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, epochs_const=2, epochs_decay=1,
                   step_order="one_forward", sample_every=75, checkpoint_every=125),
    )


# Paper Table 3 (right), declared once: the variants, in order, and what each adds to the one before.
AblationVariant = Literal["S1", "S2", "S3", "S4", "S5"]
ABLATION_VARIANTS: tuple[str, ...] = typing.get_args(AblationVariant)
ABLATION_TEXT = {
    "S1": "global generator only",
    "S2": "+ local class-specific generator, fused by sum",
    "S3": "+ local generator fused by a conv",
    "S4": "+ class-specific discriminative loss",
    "S5": "+ weight-map fusion (full LGGAN)",
}


def ablation_variant(cfg: Config, variant: str) -> Config:
    """`cfg` as ablation step S1..S5 of paper Table 3 (right); everything else unchanged (returns a copy)."""
    if variant not in ABLATION_VARIANTS:
        raise ValueError(f"ablation variant {variant!r}: expected one of {', '.join(ABLATION_VARIANTS)}")
    step = ABLATION_VARIANTS.index(variant) + 1
    cfg = copy.deepcopy(cfg)
    cfg.model.use_local = step >= 2
    cfg.model.local_combine = "sum" if step == 2 else "conv"
    cfg.loss.class_ce = (cfg.loss.class_ce or 1.0) if step >= 4 else 0.0
    cfg.model.use_weight_map = step >= 5
    if step == 1:
        cfg.loss.local_l1 = 0.0  # no local branch, nothing to reconstruct
    return cfg


def _load_size(size: int) -> int:
    """The release resizes 256 px panels to 286 and 64 px panels to 72 before cropping."""
    return {256: 286, 64: 72}.get(size, round(size * 286 / 256))


def _crossview(dataset: str, size: int, direction: str, batch_size: int, epochs: tuple[int, int]) -> Config:
    """X/train_*.sh: vanilla GAN (BCE) with pix2pix PatchGANs D_i and D_s, L1 100, VGG 10 (raw input), TV 1e-6 as a
    sum, normal(0, 0.02) init, Adam (0.5, 0.999) at 2e-4, pix2pix's lr decay, one G forward per iteration."""
    cfg = _build(
        # The release's training transform: resize to 286 (72 for 64 px) and random-crop back to the panel size.
        data=dict(dataset=dataset, num_classes=6, use_instance=False, load_size=(_load_size(size), _load_size(size)),
                  crop_size=(size, size), flip=False, direction=direction, test_crop="random"),
        model=dict(task="crossview", ngf=64, ndf=64, num_res_blocks=9, local_combine="sum", num_d=1, d_layers=3,
                   discriminator="pix2pix", init="normal", init_gain=0.02),
        loss=dict(gan_mode="vanilla", gan=1.0, feat_match=0.0, vgg=10.0, vgg_input="raw", class_ce=0.0,
                  local_l1=100.0, image_l1=100.0, tv=1e-6, tv_reduction="sum"),
        train=dict(batch_size=batch_size, epochs_const=epochs[0], epochs_decay=epochs[1]),
    )
    return apply_recipe(cfg, "release")


def _synth_views() -> Config:
    # The built-in synthetic towns at 64 px with small widths: 12 epochs (about 6,000 images) take about 10 minutes
    # on a 2-core CPU. VGG is off for the same reason as in `synth`.
    cfg = _crossview("synth-views", 64, "a2g", 4, (8, 4))
    cfg.model.ngf = 16
    cfg.model.ndf = 16
    cfg.model.num_res_blocks = 3
    cfg.loss.vgg = 0.0
    cfg.data.num_workers = 1
    cfg.data.test_crop = "center"
    cfg.train.sample_every = 250
    cfg.train.checkpoint_every = 500
    return cfg


def _custom() -> Config:
    """A user's own dataset (`data.dataset=custom`: ROOT/{train,val}/{images,labels[,instances]}, matched by stem).

    The semantic release's recipe (hinge + feature matching 10 + VGG 10 + class CE 1 + local L1 1, TTUR, the lr
    dropping each epoch over the second half) at half the release's widths (ngf = ndf = 32, SPADE hidden 64: about
    a quarter of the compute of ngf 64), 256x256 images, batch 4, 50 + 50 epochs. data.num_classes is left unset:
    the number of classes of the label maps must come from the user (--set data.num_classes=N).
    """
    return _semantic_release("custom", None, False, data=dict(load_size=(256, 256)),
                             model=dict(ngf=32, ndf=32, spade_hidden=64),
                             train=dict(batch_size=4, epochs_const=50, epochs_decay=50))


PRESETS: dict[str, Any] = {
    "synth": _synth,
    "custom": _custom,
    "cityscapes": _cityscapes,
    "ade20k": _ade20k,
    "coco-stuff": _coco_stuff,
    "S1": lambda: ablation_variant(_synth(), "S1"),
    "S2": lambda: ablation_variant(_synth(), "S2"),
    "S3": lambda: ablation_variant(_synth(), "S3"),
    "S4": lambda: ablation_variant(_synth(), "S4"),
    "S5": lambda: ablation_variant(_synth(), "S5"),
    "dayton-a2g": lambda: _crossview("crossview", 256, "a2g", 4, (20, 15)),
    "dayton-g2a": lambda: _crossview("crossview", 256, "g2a", 4, (20, 15)),
    "dayton-a2g-64": lambda: _crossview("crossview", 64, "a2g", 16, (50, 50)),
    "dayton-g2a-64": lambda: _crossview("crossview", 64, "g2a", 16, (50, 50)),
    "cvusa": lambda: _crossview("crossview", 256, "a2g", 4, (15, 15)),
    "synth-views": _synth_views,
}


def get_preset(name: str) -> Config:
    """Returns a fresh Config for a named preset."""
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: unknown preset (known: {', '.join(PRESETS)})")
    cfg = PRESETS[name]()
    cfg.preset = name
    validate(cfg, partial=True)  # a preset may leave fields to the user (missing_fields); a run checks them
    return cfg
