"""Evaluation protocols of LGGAN (CVPR 2020): cross-view metrics (Tables 1-2) and semantic synthesis (Table 3)."""

from lggan.metrics.classifier_scores import (
    classification_accuracy,
    inception_score,
    inception_scores,
    keep_top_k,
    kl_score,
    per_pair_kl,
)
from lggan.metrics.crossview import (
    CROSSVIEW_CAP_DB,
    psnr_crossview,
    psnr_standard,
    sharpness_difference,
    ssim_crossview,
    ssim_standard,
)
from lggan.metrics.fid import (
    InceptionPool3,
    build_inception_extractor,
    feature_statistics,
    fid_kid_from_features,
    fid_kid_from_folders,
    frechet_distance,
    kernel_inception_distance,
    resolve_inception_weights,
)
from lggan.metrics.files import load_image_uint8, load_label_map, write_json_atomic
from lggan.metrics.folders import ALL_METRICS, CROSSVIEW_METRICS, format_markdown_table, score_image_folders
from lggan.metrics.places365 import load_places365_alexnet, places365_probs, resolve_places365_weights
from lggan.metrics.segmentation import (
    Segmenter,
    ade20k_to_train_ids,
    cityscapes_to_train_ids,
    confusion_matrix,
    iou_per_class,
    load_torchscript_segmenter,
    map_labels,
    segmentation_scores_from_folders,
    segmentation_summary,
)
from lggan.metrics.segmenter import CompactSegmenter, load_segmenter, save_segmenter, train_segmenter

__all__ = [
    "ALL_METRICS",
    "CROSSVIEW_CAP_DB",
    "CROSSVIEW_METRICS",
    "CompactSegmenter",
    "InceptionPool3",
    "Segmenter",
    "ade20k_to_train_ids",
    "build_inception_extractor",
    "cityscapes_to_train_ids",
    "classification_accuracy",
    "confusion_matrix",
    "feature_statistics",
    "fid_kid_from_features",
    "fid_kid_from_folders",
    "format_markdown_table",
    "frechet_distance",
    "inception_score",
    "inception_scores",
    "iou_per_class",
    "keep_top_k",
    "kernel_inception_distance",
    "kl_score",
    "load_image_uint8",
    "load_label_map",
    "load_places365_alexnet",
    "load_segmenter",
    "load_torchscript_segmenter",
    "map_labels",
    "per_pair_kl",
    "places365_probs",
    "psnr_crossview",
    "psnr_standard",
    "resolve_inception_weights",
    "resolve_places365_weights",
    "save_segmenter",
    "score_image_folders",
    "segmentation_scores_from_folders",
    "segmentation_summary",
    "sharpness_difference",
    "ssim_crossview",
    "ssim_standard",
    "train_segmenter",
    "write_json_atomic",
]
