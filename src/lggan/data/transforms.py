"""Joint geometric transforms for (label, instance, image) triplets.

Resize, random crop and horizontal flip are applied with *one* shared random
draw so the semantic map, the instance map and the photo stay pixel-aligned.
Label and instance maps are resized with nearest neighbour (they hold ids, not
intensities); the photo with antialiased bicubic interpolation.

Sizes are given as ``(width, height)`` like PIL and the Cityscapes/SPADE
conventions (e.g. 512x256), while tensors are ``[..., H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

Size = tuple[int, int]


def parse_size(value: object, name: str) -> Size | None:
    """Validate a ``(width, height)`` pair (or ``"WxH"`` string); ``None`` passes through."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{name}: expected 'WIDTHxHEIGHT' such as '512x256', got {value!r}")
        value = (int(parts[0]), int(parts[1]))
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{name}: expected (width, height) as two integers, got {value!r}")
    width, height = int(value[0]), int(value[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"{name}: width and height must be positive, got {width}x{height}")
    return width, height


def resize_nearest(index_map: torch.Tensor, size: Size) -> torch.Tensor:
    """Nearest-neighbour resize of an integer map ``[..., H, W]`` to ``size=(W, H)``.

    Done by integer gathering (pixel centres, like PIL NEAREST) rather than
    ``F.interpolate`` so ids of any dtype survive exactly (no float rounding).
    """
    out_w, out_h = size
    in_h, in_w = index_map.shape[-2:]
    if (in_w, in_h) == (out_w, out_h):
        return index_map
    device = index_map.device
    # Source index floor((i + 0.5) * in / out), in exact integer arithmetic.
    rows = ((2 * torch.arange(out_h, device=device) + 1) * in_h) // (2 * out_h)
    cols = ((2 * torch.arange(out_w, device=device) + 1) * in_w) // (2 * out_w)
    return index_map[..., rows, :][..., cols]


def resize_image(image: torch.Tensor, size: Size) -> torch.Tensor:
    """Antialiased bicubic resize of a float image ``[3, H, W]`` in [-1, 1]; result clamped to [-1, 1]."""
    out_w, out_h = size
    if tuple(image.shape[-2:]) == (out_h, out_w):
        return image
    resized = F.interpolate(
        image.unsqueeze(0), size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True
    )
    # Bicubic overshoots at sharp edges; keep the documented [-1, 1] range.
    return resized.squeeze(0).clamp_(-1.0, 1.0)


@dataclass(frozen=True)
class TransformParams:
    """One random draw shared by every map of a sample."""

    crop_left: int
    crop_top: int
    flip: bool


class SemanticTransform:
    """Resize to ``load_size``, random-crop to ``crop_size``, optionally flip horizontally.

    Args:
        load_size: ``(width, height)`` to resize to first, or ``None`` to keep the native size.
        crop_size: ``(width, height)`` of the random crop, or ``None`` for no crop.
        flip: flip horizontally with probability 0.5.

    Randomness comes only from the ``generator`` passed to :meth:`__call__`
    (the global torch RNG when ``None``), so results are reproducible.
    """

    def __init__(self, load_size: Size | None = None, crop_size: Size | None = None, flip: bool = False) -> None:
        self.load_size = parse_size(load_size, "load_size")
        self.crop_size = parse_size(crop_size, "crop_size")
        self.flip = bool(flip)
        if self.load_size is not None and self.crop_size is not None:
            if self.crop_size[0] > self.load_size[0] or self.crop_size[1] > self.load_size[1]:
                raise ValueError(
                    f"crop_size {self.crop_size[0]}x{self.crop_size[1]} is larger than "
                    f"load_size {self.load_size[0]}x{self.load_size[1]}"
                )

    def __repr__(self) -> str:
        return f"SemanticTransform(load_size={self.load_size}, crop_size={self.crop_size}, flip={self.flip})"

    @property
    def is_random(self) -> bool:
        return self.flip or self.crop_size is not None

    def output_size(self, width: int, height: int) -> Size:
        """``(width, height)`` produced for an input of the given size."""
        if self.load_size is not None:
            width, height = self.load_size
        if self.crop_size is not None:
            width, height = self.crop_size
        return width, height

    def draw(self, width: int, height: int, generator: torch.Generator | None = None) -> TransformParams:
        """Draw crop offset and flip for an input of ``width x height`` (before resizing)."""
        if self.load_size is not None:
            width, height = self.load_size
        left = top = 0
        if self.crop_size is not None:
            crop_w, crop_h = self.crop_size
            if crop_w > width or crop_h > height:
                raise ValueError(
                    f"crop_size {crop_w}x{crop_h} is larger than the (resized) image {width}x{height}; "
                    "set load_size or a smaller crop_size"
                )
            left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
            top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
        flip = bool(self.flip and float(torch.rand(1, generator=generator)) < 0.5)
        return TransformParams(crop_left=left, crop_top=top, flip=flip)

    def apply(self, tensor: torch.Tensor, params: TransformParams, *, is_index_map: bool) -> torch.Tensor:
        """Apply a drawn transform to one map: ``[H, W]`` ids or ``[3, H, W]`` float image."""
        if self.load_size is not None:
            tensor = resize_nearest(tensor, self.load_size) if is_index_map else resize_image(tensor, self.load_size)
        if self.crop_size is not None:
            crop_w, crop_h = self.crop_size
            top, left = params.crop_top, params.crop_left
            tensor = tensor[..., top : top + crop_h, left : left + crop_w]
        if params.flip:
            tensor = tensor.flip(-1)
        return tensor.contiguous()

    def __call__(
        self,
        label: torch.Tensor,
        image: torch.Tensor,
        instance: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Transform ``label [H,W]``, ``image [3,H,W]`` and ``instance [H,W]`` (optional) together."""
        height, width = label.shape[-2:]
        if tuple(image.shape[-2:]) != (height, width) or (
            instance is not None and tuple(instance.shape[-2:]) != (height, width)
        ):
            shapes = f"label {tuple(label.shape)}, image {tuple(image.shape)}"
            if instance is not None:
                shapes += f", instance {tuple(instance.shape)}"
            raise ValueError(f"label, image and instance must share height and width; got {shapes}")
        params = self.draw(width, height, generator)
        label = self.apply(label, params, is_index_map=True)
        image = self.apply(image, params, is_index_map=False)
        if instance is not None:
            instance = self.apply(instance, params, is_index_map=True)
        return label, image, instance
