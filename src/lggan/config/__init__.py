"""Typed configuration: one dataclass per section, named presets, `--set a.b=value` overrides, JSON round trip.

    types.py          the allowed values (Literal types, `choices`) and numeric ranges of every field
    coercion.py       a JSON / YAML / command-line value as the field's type
    sections.py       DataConfig, ModelConfig, LossConfig, TrainConfig and Config (JSON round trip)
    task_settings.py  each task's datasets, recipes and own fields (what validation and the recipes read)
    validation.py     the checks of a whole config; what changed between two (--resume)
    recipes.py        train.recipe: a task's recipe applied to a config
    reading.py        --set overrides and --config files
    presets.py        the named presets and the ablation variants S1..S5
"""

from .types import (
    TaskName, SemanticDatasetName, CrossViewDatasetName, DatasetName, LocalCombine, ClassPool, GanMode, AmpMode,
    InferenceAmpMode, ChannelsLastMode, Direction, UpsamplingLayers, UPSAMPLINGS, DiscriminatorArch, InitKind,
    VggInput, Reduction, Recipe, LrSchedule, StepOrder, CropMode, ExportFormat, LabelPaletteName, ImageMetricName,
    LabelProtocol, choices, Range, POSITIVE, NON_NEGATIVE, AT_LEAST_1, FRACTION, field_range, SEMANTIC_DATASETS,
    CROSSVIEW_DATASETS, AblationVariant, ABLATION_VARIANTS,
)
from .coercion import size_arg
from .sections import ARCHITECTURE_FIELDS, DataConfig, ModelConfig, LossConfig, TrainConfig, Config
from .validation import config_changes, architecture_changes, missing_fields, validate, check_range
from .task_settings import DATASET_TASK, TASK_SETTINGS, TaskSettings
from .recipes import apply_recipe
from .reading import (
    apply_overrides, CONFIG_SECTIONS, YAML_SUFFIXES, MAX_CONFIG_BYTES, MAX_MESSAGE_CHARS, read_config_file,
    apply_config_file,
)
from .presets import ABLATION_TEXT, ablation_variant, PRESETS, get_preset

__all__ = [
    "TaskName", "SemanticDatasetName", "CrossViewDatasetName", "DatasetName", "LocalCombine", "ClassPool",
    "GanMode", "AmpMode", "InferenceAmpMode", "ChannelsLastMode", "Direction", "UpsamplingLayers", "UPSAMPLINGS",
    "DiscriminatorArch", "InitKind", "VggInput", "Reduction", "Recipe", "LrSchedule", "StepOrder", "CropMode",
    "ExportFormat", "LabelPaletteName", "ImageMetricName", "LabelProtocol", "choices", "Range", "POSITIVE",
    "NON_NEGATIVE", "AT_LEAST_1", "FRACTION", "field_range", "SEMANTIC_DATASETS", "CROSSVIEW_DATASETS",
    "DATASET_TASK", "AblationVariant", "ABLATION_VARIANTS", "size_arg", "ARCHITECTURE_FIELDS", "DataConfig",
    "ModelConfig", "LossConfig", "TrainConfig", "Config", "config_changes", "architecture_changes",
    "missing_fields", "validate", "check_range", "TASK_SETTINGS", "TaskSettings", "apply_recipe", "apply_overrides",
    "CONFIG_SECTIONS", "YAML_SUFFIXES", "MAX_CONFIG_BYTES", "MAX_MESSAGE_CHARS", "read_config_file",
    "apply_config_file", "ABLATION_TEXT", "ablation_variant", "PRESETS", "get_preset",
]
