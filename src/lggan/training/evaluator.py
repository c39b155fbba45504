"""Metrics during training (`train.eval_every`): the segmenter protocol of `lggan evaluate` on a fixed val subset.

The generated images are rounded to uint8 exactly as `lggan evaluate` writes them before the segmenter sees them,
so the numbers logged at iteration N equal `lggan evaluate --checkpoint RUN/checkpoints/iter_N --limit
train.eval_images --metrics miou` with the same segmenter (up to the batch composition of the segmenter's convs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..tasks import EvalBatch, Task, as_id_batch
from ..viz import to_unit

# Images per generator/segmenter call: small enough for a CPU, large enough to amortise the call overhead.
EVAL_BATCH = 8


def as_saved(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] in [-1,1] -> [0,1] on the uint8 grid, as a PNG written by `evaluate` and read back holds it."""
    return torch.floor(to_unit(image) * 255.0 + 0.5) / 255.0


class TrainingEvaluator:
    """Scores a generator on the first `eval_images` images of the evaluation split with a built-in segmenter."""

    def __init__(self, task: Task, segmenter: Any, batches: list[EvalBatch], device: torch.device):
        from ..metrics.segmentation import map_labels

        self.task = task
        self.segmenter = segmenter
        self.batches = batches
        self.device = device
        seg = segmenter
        # Train ids [B,H,W] (255 = ignored) of every batch, computed once.
        self.targets = [map_labels(b.label_maps, seg.label_protocol, seg.num_classes, seg.ignore_index)
                        for b in batches]
        self.num_images = sum(len(b.names) for b in batches)
        self.real = self._score(lambda b: as_saved(b.real))  # the ceiling: the segmenter on the real photos

    @classmethod
    def build(cls, task: Task, segmenter_path: str, num_images: int, device: torch.device) -> "TrainingEvaluator":
        """Loads the segmenter and the evaluation subset; errors name train.eval_segmenter / the task."""
        from ..metrics import load_segmenter

        if not task.has_label_maps():
            raise ValueError(f"train.eval_every: the {task.cfg.model.task} task has no label maps for the segmenter "
                             "(set train.eval_every=0)")
        path = Path(segmenter_path)
        if not path.is_file():
            raise FileNotFoundError(f"train.eval_segmenter={path}: no such file (train one with "
                                    "`lggan train-segmenter`)")
        if path.suffix != ".safetensors":
            raise ValueError(f"train.eval_segmenter={path}: expected a built-in segmenter (.safetensors from "
                             "`lggan train-segmenter`)")
        try:
            segmenter = load_segmenter(path, device)
        except ValueError as e:
            raise ValueError(f"train.eval_segmenter={path}: {e}") from None
        dataset = task.eval_dataset(task.default_split())
        _, batches = task.eval_batches(dataset, EVAL_BATCH, num_images)
        return cls(task, segmenter, list(batches), device)

    def _score(self, images_of: Callable[[EvalBatch], torch.Tensor]) -> dict[str, Any]:
        from ..metrics.segmentation import confusion_matrix, segmentation_summary

        seg = self.segmenter
        confusion = torch.zeros(seg.num_classes, seg.num_classes, dtype=torch.long)
        pixels = 0
        for batch, target in zip(self.batches, self.targets):
            images = images_of(batch)  # [B,3,H,W] in [0,1]
            confusion += confusion_matrix(seg.predict(images).cpu(), target, seg.num_classes)
            pixels += target.numel()
        return segmentation_summary(confusion, pixels, seg.class_names)

    @torch.no_grad()
    def __call__(self, generator: nn.Module, forward: Callable[[tuple[torch.Tensor, ...]], Any]) -> dict[str, Any]:
        """Scores `generator` in eval mode; `forward(inputs)` runs it as training does (autocast, memory format).

        The RNG state and the generator's train/eval mode are restored, so a run with evaluation trains exactly
        as one without.
        """
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        was_training = generator.training
        generator.eval()
        t0 = time.time()
        try:
            def images_of(b: EvalBatch) -> torch.Tensor:
                inputs = self.task.generator_inputs(as_id_batch(b.label, self.device), b.instance, b.aerial)
                return as_saved(forward(inputs).image)

            scores = self._score(images_of)
        finally:
            generator.train(was_training)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        scores["seconds"] = time.time() - t0
        return scores


def eval_record(iteration: int, scores: dict[str, Any], real: dict[str, Any] | None, num_images: int) -> dict:
    """The log.jsonl line of one evaluation (flat numbers for TensorBoard, per-class IoU as a dict)."""
    record = {"iteration": iteration, "kind": "eval", "eval_images": num_images, "eval_miou": scores["miou"],
              "eval_pixel_accuracy": scores["pixel_accuracy"], "eval_seconds": round(scores["seconds"], 3),
              "eval_per_class_iou": scores["per_class_iou"]}
    if real is not None:
        record.update(eval_miou_real=real["miou"], eval_pixel_accuracy_real=real["pixel_accuracy"])
    return record
