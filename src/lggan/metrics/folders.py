"""Score a folder of generated images against a folder of real ones (cross-view Tables 1-2, FID/KID of Table 3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lggan.config import ImageMetricName, choices

from lggan.metrics.classifier_scores import (
    CLASSIFIER_PROTOCOL,
    classification_accuracy,
    inception_scores,
    kl_score,
)
from lggan.metrics.crossview import CROSSVIEW_PIXEL_PROTOCOL, PIXEL_METRICS
from lggan.metrics.fid import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    SEED,
    FeatureExtractor,
    build_inception_extractor,
    extract_features,
    extractor_protocol,
    fid_kid_from_features,
)
from lggan.metrics.files import (
    batch_by_shape,
    check_pair_sizes,
    image_size,
    list_images,
    load_image_uint8,
    pair_by_name,
    resize_uint8,
    uint8_to_unit,
)
from lggan.metrics.places365 import (
    PLACES365_PROTOCOL,
    load_places365_alexnet,
    places365_probs,
    resolve_places365_weights,
)
from lggan.progress import progress_bar

PIXEL_METRIC_NAMES = tuple(PIXEL_METRICS)
CLASSIFIER_METRIC_NAMES = ("inception_score", "accuracy", "kl")
DISTRIBUTION_METRIC_NAMES = ("fid", "kid")
ALL_METRICS = choices(ImageMetricName)
# The registry of each family covers the declared names exactly (tests/test_cli.py checks it too).
assert set(ALL_METRICS) == set(PIXEL_METRIC_NAMES + CLASSIFIER_METRIC_NAMES + DISTRIBUTION_METRIC_NAMES)
# The cross-view columns of LGGAN Tables 1-2.
CROSSVIEW_METRICS = ("accuracy", "inception_score", "ssim", "psnr", "sd", "kl")


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names (order kept, duplicates dropped)."""
    if not metrics:
        raise ValueError(f"metrics: empty (choose from {', '.join(ALL_METRICS)})")
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown} (choose from {', '.join(ALL_METRICS)})")
    return tuple(dict.fromkeys(metrics))


def _load_pair(gen_path: Path, real_path: Path, resize_real: bool, size: tuple[int, int] | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 generated and real images [3,H,W]: both at `size` if given, else the real one resized to the generated
    size if asked (resize_uint8 leaves an image already at that size untouched)."""
    gen, real = load_image_uint8(gen_path), load_image_uint8(real_path)
    if size is not None:
        return resize_uint8(gen, size), resize_uint8(real, size)
    return gen, (resize_uint8(real, tuple(gen.shape[-2:])) if resize_real else real)


def comparison_protocol(size: tuple[int, int] | None, resize_real: bool) -> str:
    """How the pairs were brought to one size, in words, for the results' protocol."""
    if size is not None:
        return f"both images resized to {size[1]}x{size[0]} (WxH; bilinear, antialias)"
    if resize_real:
        return "real images resized to their generated partner's size (bilinear, antialias)"
    return "as stored"


def score_image_folders(
    generated_dir: str | os.PathLike,
    real_dir: str | os.PathLike,
    metrics: Sequence[str] = CROSSVIEW_METRICS,
    generated_suffix: str = "",
    real_suffix: str = "",
    recursive: bool = False,
    resize_real: bool = False,
    size: tuple[int, int] | None = None,
    places365_weights: str | os.PathLike | None = None,
    places365_model: nn.Module | None = None,
    inception_weights: str | os.PathLike | None = None,
    feature_extractor: FeatureExtractor | None = None,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
    per_image: bool = False,
) -> dict[str, Any]:
    """Pair images by file name (stem minus the optional suffixes) and compute the requested metrics.

    metrics: any of ALL_METRICS. recursive: also search sub-folders (e.g. Cityscapes city folders).
    resize_real: resize each real image to its generated partner's size (bilinear, antialiased) first;
    otherwise pixel metrics need equal sizes per pair. size (H, W): both images of every pair resized to it.
    Every metric reads the same resized pairs. Classifier metrics use places365_model or the
    AlexNet-Places365 weights file; fid/kid use feature_extractor or the TF-Inception weights file.
    Per-image metrics are averaged over the set; everything returned is JSON-serialisable. per_image: also return
    each pair's pixel metrics, {generated file name: {metric: value}} under "per_image" (for a results page).
    """
    wanted = _check_metrics(metrics)
    generated = list_images(generated_dir, "generated_dir", recursive)
    pairs = pair_by_name(generated, list_images(real_dir, "real_dir", recursive), generated_suffix, real_suffix)
    pixel = [m for m in wanted if m in PIXEL_METRIC_NAMES]
    classify = any(m in CLASSIFIER_METRIC_NAMES for m in wanted)
    distribution = any(m in DISTRIBUTION_METRIC_NAMES for m in wanted)
    # Every header is read before any network loads, so an empty or foreign file fails at once, by name.
    for gen_path, real_path in pairs:
        image_size(gen_path)
        image_size(real_path)
    if pixel and not resize_real and size is None:
        check_pair_sizes(pairs)
    protocol: dict[str, Any] = {
        "pairing": f"by file stem (generated suffix {generated_suffix!r}, real suffix {real_suffix!r})",
        "real_images": comparison_protocol(size, resize_real),
        "aggregation": "per-image metrics averaged over all pairs",
        "metrics": {
            m: CROSSVIEW_PIXEL_PROTOCOL.get(m) or CLASSIFIER_PROTOCOL.get(m, "see 'distribution'") for m in wanted
        },
    }
    # Load networks before the long loop so a missing weights file fails fast.
    if classify:
        if places365_model is None:
            places365_model = load_places365_alexnet(resolve_places365_weights(places365_weights), device)
        # A model from load_places365_alexnet names its file; any other was built by the caller.
        weights = getattr(places365_model, "weights_path", None) or f"injected {type(places365_model).__name__}"
        protocol["places365"] = {**PLACES365_PROTOCOL, "weights": weights}
    if distribution and feature_extractor is None:
        feature_extractor = build_inception_extractor(inception_weights, device)

    per_image_values: dict[str, list[torch.Tensor]] = {m: [] for m in pixel}
    probs: dict[str, list[torch.Tensor]] = {"generated": [], "real": []}
    features: dict[str, list[np.ndarray]] = {"generated": [], "real": []}
    loaded = (_load_pair(gen_path, real_path, resize_real, size) for gen_path, real_path in pairs)
    for gen_u8, real_u8 in progress_bar(batch_by_shape(loaded, batch_size), desc="scoring", unit="batch", enabled=progress, leave=False):
        gen, real = uint8_to_unit(gen_u8), uint8_to_unit(real_u8)
        for name in pixel:
            per_image_values[name].append(PIXEL_METRICS[name](gen, real))
        if classify:
            probs["generated"].append(places365_probs(gen, places365_model, batch_size))
            probs["real"].append(places365_probs(real, places365_model, batch_size))
        if distribution:
            features["generated"].append(extract_features([gen_u8], feature_extractor))
            features["real"].append(extract_features([real_u8], feature_extractor))

    result: dict[str, Any] = {"num_images": len(pairs)}
    for name in pixel:
        result[name] = torch.cat(per_image_values[name]).mean().item()
    if per_image:
        # Batches keep the pairs' order, so the k-th value is the k-th pair's.
        columns = {name: torch.cat(per_image_values[name]).tolist() for name in pixel}
        result["per_image"] = {gen.name: {name: columns[name][k] for name in pixel}
                               for k, (gen, _) in enumerate(pairs)}
    if classify:
        p_gen, p_real = torch.cat(probs["generated"]), torch.cat(probs["real"])
        if "inception_score" in wanted:
            result["inception_score"] = {"generated": inception_scores(p_gen), "real": inception_scores(p_real)}
        if "accuracy" in wanted:
            result["accuracy"] = classification_accuracy(p_gen, p_real)
        if "kl" in wanted:
            result["kl"] = kl_score(p_gen, p_real)
    if distribution:
        scores = fid_kid_from_features(
            np.concatenate(features["generated"]),
            np.concatenate(features["real"]),
            kid="kid" in wanted,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            seed=seed,
        )
        protocol["distribution"] = {**scores.pop("protocol"), **extractor_protocol(feature_extractor)}
        result.update({key: scores[key] for key in ("fid", "kid") if key in wanted})
    result["protocol"] = protocol
    return result


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested numeric results -> {'a.b': number}; the protocol and non-numeric entries are skipped."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key == "protocol":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif value is None or isinstance(value, (int, float)):
            flat[name] = value
    return flat


def _cell(value: Any) -> str:
    """Table cell: ints as-is, floats with 4 decimals, missing as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def format_markdown_table(results: Mapping[str, Any]) -> str:
    """Markdown table of one result dict (metric | value) or of {run name: result dict} (one column per run)."""
    single = "protocol" in results or any(not isinstance(v, Mapping) for v in results.values())
    runs = {"value": results} if single else dict(results)
    columns = {name: _flatten(run) for name, run in runs.items()}
    rows = list(dict.fromkeys(key for flat in columns.values() for key in flat))
    lines = [
        "| metric | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    lines += [f"| {row} | " + " | ".join(_cell(flat.get(row)) for flat in columns.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"
