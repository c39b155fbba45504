"""Built-in synthetic city: procedural street scenes in the exact Cityscapes layout.

Each scene is a perspective street seen from a car: sky, building facades
(with windows in the photo only, as Cityscapes labels them "building"),
walls/fences/trees between buildings, a road converging to the vanishing
point, sidewalks, terrain strips, and the small objects LGGAN cares about:
poles with traffic signs and lights, cars and persons (with instance ids
``id * 1000 + k``). Geometry comes from a pinhole camera, so far objects are
smaller and sit nearer the horizon, and objects are painted far to near so
occlusions are correct.

The photo is rendered *from* the layout with per-class textures, per-object
colours, lighting, haze and noise drawn from the random generator, so the
same layout renders to different photos and appearance is learnable but not
a colour lookup.

Files follow the Cityscapes naming under a city folder ``synth``::

    ROOT/leftImg8bit/{train,val}/synth/synth_{i:06d}_000019_leftImg8bit.png
    ROOT/gtFine/{train,val}/synth/synth_{i:06d}_000019_gtFine_labelIds.png
    ROOT/gtFine/{train,val}/synth/synth_{i:06d}_000019_gtFine_instanceIds.png
    ROOT/synth_city.json                                  (parameters + class statistics)

so :class:`lggan.data.cityscapes.CityscapesDataset` reads it unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import id2label, name2label
from PIL import Image

from .storage import build_atomically, cache_dir, check_workers, ensure_built, is_complete, run_jobs, write_json
from .transforms import parse_size

SYNTH_CITY_VERSION = 1
CITY = "synth"
META_FILE = "synth_city.json"
DEFAULT_SIZE = (256, 128)
SPLIT_CODES = {"train": 0, "val": 1}  # fixed codes: part of each image's seed

# Official Cityscapes label ids, taken from cityscapesscripts rather than retyped.
ROAD = name2label["road"].id
SIDEWALK = name2label["sidewalk"].id
BUILDING = name2label["building"].id
WALL = name2label["wall"].id
FENCE = name2label["fence"].id
POLE = name2label["pole"].id
TRAFFIC_LIGHT = name2label["traffic light"].id
TRAFFIC_SIGN = name2label["traffic sign"].id
VEGETATION = name2label["vegetation"].id
TERRAIN = name2label["terrain"].id
SKY = name2label["sky"].id
PERSON = name2label["person"].id
CAR = name2label["car"].id

# Surface orientation codes (for lighting in the photo).
N_SKY, N_UP, N_POS_X, N_NEG_X, N_FRONT = 0, 1, 2, 3, 4


# ----------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Camera:
    """Pinhole camera ``height`` metres above the ground looking down the street (+Z)."""

    width: int
    height: int
    focal: float  # pixels
    cx: float  # vanishing point column
    horizon: float  # horizon row
    cam_height: float  # metres

    def col(self, x: np.ndarray | float, z: np.ndarray | float) -> np.ndarray | float:
        return self.cx + self.focal * np.asarray(x) / z

    def row(self, y: np.ndarray | float, z: np.ndarray | float) -> np.ndarray | float:
        return self.horizon + self.focal * (self.cam_height - np.asarray(y)) / z


@dataclass
class SceneLayout:
    """Label layout plus the geometry the photo renderer needs (all ``[H, W]``)."""

    label: np.ndarray  # uint8 Cityscapes label ids
    instance: np.ndarray  # int32: id*1000+k for cars/persons, else the label id
    depth: np.ndarray  # float32 metres along the street, inf for sky
    tex_u: np.ndarray  # float32 surface coordinate (metres): across / along the surface
    tex_v: np.ndarray  # float32 surface coordinate (metres): height or depth
    part: np.ndarray  # uint8 sub-part of an object (glass, wheel, head, lamp ...), photo only
    surface: np.ndarray  # int32 surface index: per-object / per-facade colour in the photo
    normal: np.ndarray  # uint8 orientation code N_*
    num_surfaces: int
    camera: Camera
    street: dict = field(default_factory=dict)

    def paint(
        self,
        rows: slice,
        cols: slice,
        mask: np.ndarray,
        *,
        label: int,
        instance: int,
        surface: int,
        normal: int,
        depth: np.ndarray | float,
        u: np.ndarray,
        v: np.ndarray,
        part: np.ndarray | int = 0,
    ) -> None:
        """Overwrite the masked pixels of the box ``[rows, cols]`` (painter's algorithm)."""
        for array, value in (
            (self.label, label),
            (self.instance, instance),
            (self.surface, surface),
            (self.normal, normal),
            (self.part, part),
            (self.depth, depth),
            (self.tex_u, u),
            (self.tex_v, v),
        ):
            box = array[rows, cols]
            box[mask] = value[mask] if isinstance(value, np.ndarray) else value


def _pixel_grid(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``py [h, 1]`` and ``px [1, w]`` of a box."""
    py = (np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5)[:, None]
    px = (np.arange(cols.start, cols.stop, dtype=np.float64) + 0.5)[None, :]
    return py, px


def _box(cam: Camera, xs: list[float], ys: list[float]) -> tuple[slice, slice] | None:
    """Clipped pixel box around projected points (``xs``, ``ys`` in pixels); ``None`` if off-screen."""
    x0, x1 = int(np.floor(min(xs))) - 1, int(np.ceil(max(xs))) + 2
    y0, y1 = int(np.floor(min(ys))) - 1, int(np.ceil(max(ys))) + 2
    x0, x1 = max(x0, 0), min(x1, cam.width)
    y0, y1 = max(y0, 0), min(y1, cam.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


class _Frontal:
    """World coordinates of a box of pixels on the plane ``Z = z`` facing the camera.

    Shape tests widen every extent to at least ~1 pixel so thin poles and
    distant signs never vanish from the label map.
    """

    def __init__(self, cam: Camera, z: float, rows: slice, cols: slice) -> None:
        py, px = _pixel_grid(rows, cols)
        self.x = (px - cam.cx) * z / cam.focal  # [1, w]
        self.y = cam.cam_height - (py - cam.horizon) * z / cam.focal  # [h, 1]
        self.min_half = 0.55 * z / cam.focal  # half a pixel (+10%) in metres

    def rect(self, cx: float, half_w: float, y0: float, y1: float) -> np.ndarray:
        half_w = max(half_w, self.min_half)
        mid, half_h = (y0 + y1) / 2, max((y1 - y0) / 2, self.min_half)
        return (np.abs(self.x - cx) <= half_w) & (np.abs(self.y - mid) <= half_h)

    def trapezoid(self, cx: float, half_bottom: float, half_top: float, y0: float, y1: float) -> np.ndarray:
        t = np.clip((self.y - y0) / max(y1 - y0, 1e-6), 0.0, 1.0)
        half = np.maximum(half_bottom + (half_top - half_bottom) * t, self.min_half)
        return (np.abs(self.x - cx) <= half) & (self.y >= y0 - self.min_half) & (self.y <= y1 + self.min_half)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        rx, ry = max(rx, self.min_half), max(ry, self.min_half)
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 <= 1.0

    def blob(self, cx: float, cy: float, rx: float, ry: float, wobble: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """Ellipse whose radius wobbles with angle (tree canopies)."""
        dx, dy = (self.x - cx) / max(rx, self.min_half), (self.y - cy) / max(ry, self.min_half)
        angle = np.arctan2(dy, dx)
        k = np.arange(2, 2 + len(wobble))[:, None, None]
        radius = 1.0 + (wobble[:, None, None] * np.sin(k * angle + phase[:, None, None])).sum(axis=0)
        return dx**2 + dy**2 <= radius**2


def _sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    return Camera(
        width=width,
        height=height,
        focal=width * rng.uniform(0.55, 0.8),
        cx=width * rng.uniform(0.4, 0.6),
        horizon=height * rng.uniform(0.36, 0.5),
        cam_height=rng.uniform(1.3, 1.8),
    )


def _facade_segments(rng: np.random.Generator, z_far: float) -> list[tuple[float, float, int, float]]:
    """Blocks along one side of the street: ``(z_start, z_end, label, height)``; label 0 = gap."""
    segments = []
    z = 0.5
    while z < z_far:
        length = rng.uniform(8.0, 28.0)
        kind = rng.choice(4, p=[0.66, 0.16, 0.1, 0.08])
        if kind == 0:
            segment = (BUILDING, rng.uniform(7.0, 28.0))
        elif kind == 1:
            segment = (VEGETATION, rng.uniform(4.0, 10.0))
        elif kind == 2:
            segment = (WALL, rng.uniform(1.0, 2.5)) if rng.random() < 0.5 else (FENCE, rng.uniform(1.0, 2.0))
        else:
            segment = (0, 0.0)
        segments.append((z, min(z + length, z_far), *segment))
        z += length
    return segments


def layout_scene(rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE) -> SceneLayout:
    """Random street layout of ``size = (width, height)`` pixels."""
    width, height = size
    if width < 8 or height < 8:
        raise ValueError(f"size must be at least 8x8 pixels, got {width}x{height}")
    cam = _sample_camera(rng, width, height)
    ys = (np.arange(height) + 0.5)[:, None]  # [H, 1]
    xs = (np.arange(width) + 0.5)[None, :]  # [1, W]
    shape = (height, width)
    layout = SceneLayout(
        label=np.full(shape, SKY, np.uint8),
        instance=np.full(shape, SKY, np.int32),
        depth=np.full(shape, np.inf, np.float32),
        tex_u=np.zeros(shape, np.float32),
        tex_v=np.zeros(shape, np.float32),
        part=np.zeros(shape, np.uint8),
        surface=np.zeros(shape, np.int32),
        normal=np.zeros(shape, np.uint8),
        num_surfaces=2,  # 0 sky, 1 ground
        camera=cam,
    )

    # Street cross-section in metres; the camera is at X = 0 inside the road.
    lanes = int(rng.integers(2, 5))
    lane_w = rng.uniform(2.8, 3.5)
    road_l = -rng.uniform(0.25, 0.75) * lanes * lane_w
    road_r = road_l + lanes * lane_w
    side_l = road_l - rng.uniform(1.5, 4.5)
    side_r = road_r + rng.uniform(1.5, 4.5)
    facade_l = side_l - (rng.uniform(0.8, 3.0) if rng.random() < 0.4 else 0.0)
    facade_r = side_r + (rng.uniform(0.8, 3.0) if rng.random() < 0.4 else 0.0)
    z_far = rng.uniform(60.0, 160.0)
    layout.street = {
        "lane_lines": [road_l + i * lane_w for i in range(1, lanes)],
        "road": (road_l, road_r),
        "sidewalk": (side_l, side_r),
        "facade": (facade_l, facade_r),
        "z_far": z_far,
    }

    # Ground plane: every pixel below the horizon, classified by lateral position X.
    below = np.broadcast_to(ys > cam.horizon, shape)
    dy = np.maximum(ys - cam.horizon, 1e-3)
    z_ground = np.broadcast_to(cam.focal * cam.cam_height / dy, shape)  # [H, W]
    x_ground = (xs - cam.cx) * z_ground / cam.focal
    ground = np.select(
        [
            (x_ground >= road_l) & (x_ground <= road_r),
            (x_ground >= side_l) & (x_ground <= side_r),
        ],
        [ROAD, SIDEWALK],
        TERRAIN,
    )
    layout.label[below] = ground[below]
    layout.instance[below] = ground[below]
    layout.depth[below] = z_ground[below]
    layout.tex_u[below] = x_ground[below]
    layout.tex_v[below] = z_ground[below]
    layout.surface[below] = 1
    layout.normal[below] = N_UP

    # Side facades: planes X = facade_l / facade_r. On such a plane depth depends
    # only on the column, so each column covers one vertical run of rows.
    for plane_x, normal in ((facade_l, N_POS_X), (facade_r, N_NEG_X)):
        segments = _facade_segments(rng, z_far)
        starts = np.array([s[0] for s in segments])
        first_surface = layout.num_surfaces
        layout.num_surfaces += len(segments)
        offset = xs[0] - cam.cx  # [W]
        valid = offset * plane_x > 0
        z_col = np.where(valid, cam.focal * plane_x / np.where(valid, offset, 1.0), np.inf)  # [W]
        seg = np.clip(np.searchsorted(starts, z_col, side="right") - 1, 0, len(segments) - 1)
        seg_label = np.array([s[2] for s in segments])[seg]
        top = np.array([s[3] for s in segments])[seg]
        # Tree lines get a ragged top; walls/fences are straight.
        z_fin = np.where(np.isfinite(z_col), z_col, 0.0)
        wiggle = np.sin(z_fin * rng.uniform(0.6, 1.2) + rng.uniform(0, 6.3)) * np.sin(z_fin * rng.uniform(1.7, 2.9))
        top = np.where(seg_label == VEGETATION, top + 1.2 * wiggle, top)
        valid &= (z_col < z_far) & (seg_label != 0)
        y_world = cam.cam_height - (ys - cam.horizon) * z_col[None, :] / cam.focal  # [H, W]
        hit = valid[None, :] & (y_world >= 0) & (y_world <= top[None, :]) & (z_col[None, :] < layout.depth)
        z_full = np.broadcast_to(z_col[None, :], shape)
        labels = np.broadcast_to(seg_label[None, :], shape)
        layout.label[hit] = labels[hit]
        layout.instance[hit] = labels[hit]
        layout.depth[hit] = z_full[hit]
        layout.tex_u[hit] = z_full[hit]
        layout.tex_v[hit] = y_world[hit]
        layout.surface[hit] = np.broadcast_to(first_surface + seg[None, :], shape)[hit]
        layout.normal[hit] = normal

    # Buildings closing the street at z_far (sometimes open to the sky).
    if rng.random() < 0.75:
        edges = [facade_l]
        while edges[-1] < facade_r:
            edges.append(edges[-1] + rng.uniform(6.0, 20.0))
        heights = rng.uniform(5.0, 35.0, len(edges) - 1)
        kinds = np.where(rng.random(len(edges) - 1) < 0.15, VEGETATION, BUILDING)
        x_col = (xs[0] - cam.cx) * z_far / cam.focal
        block = np.clip(np.searchsorted(np.array(edges), x_col, side="right") - 1, 0, len(heights) - 1)
        inside = (x_col >= facade_l) & (x_col <= facade_r)
        y_world = cam.cam_height - (ys - cam.horizon) * z_far / cam.focal  # [H, 1]
        hit = inside[None, :] & (y_world >= 0) & (y_world <= heights[block][None, :]) & (z_far < layout.depth)
        labels = np.broadcast_to(kinds[block][None, :], shape)
        layout.label[hit] = labels[hit]
        layout.instance[hit] = labels[hit]
        layout.depth[hit] = z_far
        layout.tex_u[hit] = np.broadcast_to(x_col[None, :], shape)[hit]
        layout.tex_v[hit] = np.broadcast_to(y_world, shape)[hit]
        layout.surface[hit] = np.broadcast_to(layout.num_surfaces + block[None, :], shape)[hit]
        layout.normal[hit] = N_FRONT
        layout.num_surfaces += len(heights)

    _place_objects(rng, layout)
    return layout


# ---------------------------------------------------------------------- objects


def _walk(rng: np.random.Generator, start: tuple[float, float], step: tuple[float, float], stop: float) -> list[float]:
    """Positions along the street: first in ``start``, then spaced by ``step`` until ``stop``."""
    positions, z = [], rng.uniform(*start)
    while z < stop:
        positions.append(z)
        z += rng.uniform(*step)
    return positions


def _place_objects(rng: np.random.Generator, layout: SceneLayout) -> None:
    """Choose cars, persons, poles (+signs, lights) and trees, then paint them far to near."""
    street = layout.street
    road_l, road_r = street["road"]
    side_l, side_r = street["sidewalk"]
    z_max = min(street["z_far"] * 0.85, 90.0)
    lane_w = (road_r - road_l) / (len(street["lane_lines"]) + 1)
    objects: list[tuple[float, Callable[[int], None]]] = []  # (depth, paint(k))
    counters = {CAR: 0, PERSON: 0}

    def add(z: float, painter: Callable[..., None], *args: object) -> None:
        objects.append((z, lambda surface: painter(layout, surface, *args)))

    # Cars: in lanes (away from the camera's own lane up close) and parked at both curbs.
    rows_x = [road_l + (i + 0.5) * lane_w for i in range(len(street["lane_lines"]) + 1)]
    occupancy = [0.45] * len(rows_x)
    for curb_x, sign in ((road_l, 1.0), (road_r, -1.0)):
        if rng.random() < 0.6:
            rows_x.append(curb_x + sign * 1.05)
            occupancy.append(0.6)
    for lane_x, p in zip(rows_x, occupancy):
        near = 9.0 if abs(lane_x) < lane_w / 2 else 4.0
        for z in _walk(rng, (near, near + 10.0), (7.0, 30.0), z_max):
            if rng.random() < p:
                car = dict(
                    x=lane_x + rng.uniform(-0.25, 0.25),
                    width=rng.uniform(1.6, 2.0),
                    length=rng.uniform(3.8, 4.9),
                    height=rng.uniform(1.35, 1.9),
                )
                add(z, _paint_car, z, car, CAR * 1000 + counters[CAR])
                counters[CAR] += 1

    # Persons: mostly on the sidewalks, a few crossing the road.
    for _ in range(int(rng.integers(0, 9))):
        if rng.random() < 0.12:
            x = rng.uniform(road_l + 0.5, road_r - 0.5)
        elif rng.random() < 0.5:
            x = rng.uniform(side_l + 0.3, road_l - 0.3)
        else:
            x = rng.uniform(road_r + 0.3, side_r - 0.3)
        z = rng.uniform(3.0, min(45.0, z_max))
        add(z, _paint_person, z, x, rng.uniform(1.5, 1.95), rng.random(2), PERSON * 1000 + counters[PERSON])
        counters[PERSON] += 1

    # Poles near each curb carrying signs / traffic lights; trees at the sidewalk's outer edge.
    for curb_x, sign in ((road_l, -1.0), (road_r, 1.0)):
        for z in _walk(rng, (3.0, 14.0), (9.0, 30.0), z_max):
            pole = dict(
                x=curb_x + sign * rng.uniform(0.3, 0.7),
                height=rng.uniform(3.2, 7.0),
                sign=int(rng.choice(4)) if rng.random() < 0.6 else -1,
                sign_height=rng.uniform(2.1, 2.9),
                light=bool(rng.random() < 0.35),
                toward_road=-sign,
            )
            add(z, _paint_pole, z, pole)
    for outer, sign in ((side_l, 1.0), (side_r, -1.0)):
        if rng.random() < 0.45:
            for z in _walk(rng, (4.0, 12.0), (7.0, 16.0), z_max):
                tree = dict(
                    x=outer + sign * rng.uniform(0.5, 1.0),
                    trunk=rng.uniform(2.0, 3.2),
                    rx=rng.uniform(1.2, 2.2),
                    ry=rng.uniform(1.4, 2.4),
                    wobble=rng.uniform(0.0, 0.12, 4),
                    phase=rng.uniform(0.0, 6.3, 4),
                )
                add(z, _paint_tree, z, tree)

    # Painter's algorithm: far objects first so near ones occlude them.
    for _, paint in sorted(objects, key=lambda item: -item[0]):
        paint(layout.num_surfaces)
        layout.num_surfaces += 1


def _paint_car(layout: SceneLayout, surface: int, z0: float, car: dict, instance: int) -> None:
    """Box-shaped car: rear face at ``z0`` plus the long side facing the camera (if visible)."""
    cam = layout.camera
    cx, w, length, h = car["x"], car["width"], car["length"], car["height"]
    belt = 0.55 * h  # top of the body, bottom of the cabin
    corners_x = [cx - w / 2, cx + w / 2]
    pts = [(x, y, z) for x in corners_x for y in (0.0, h) for z in (z0, z0 + length)]
    box = _box(cam, [cam.col(x, z) for x, _, z in pts], [cam.row(y, z) for _, y, z in pts])
    if box is None:
        return
    rows, cols = box
    py, px = _pixel_grid(rows, cols)

    # Side plane X = side_x (the one facing the camera), seen for depths z0..z0+length.
    side_x = cx - w / 2 if cx - w / 2 > 0 else (cx + w / 2 if cx + w / 2 < 0 else None)
    if side_x is not None:
        offset = px - cam.cx
        ok = offset * side_x > 0
        z_side = np.where(ok, cam.focal * side_x / np.where(ok, offset, 1.0), np.inf)  # [1, w]
        y_side = cam.cam_height - (py - cam.horizon) * z_side / cam.focal  # [h, w]
        along = z_side - z0  # metres from the rear
        in_len = (along >= 0) & (along <= length)
        wheel_r = 0.33
        wheels = ((along - 0.18 * length) ** 2 + (y_side - wheel_r) ** 2 <= wheel_r**2) | (
            (along - 0.82 * length) ** 2 + (y_side - wheel_r) ** 2 <= wheel_r**2
        )
        body = in_len & (y_side >= 0.18) & (y_side <= belt)
        slope = (h - belt) * 0.8
        cabin_lo = 0.2 * length + slope * (y_side - belt) / max(h - belt, 1e-6)
        cabin_hi = 0.8 * length - slope * (y_side - belt) / max(h - belt, 1e-6)
        cabin = in_len & (y_side > belt) & (y_side <= h) & (along >= cabin_lo) & (along <= cabin_hi)
        glass = cabin & (y_side < h - 0.08) & (along >= cabin_lo + 0.1) & (along <= cabin_hi - 0.1)
        mask = body | cabin | (wheels & in_len)
        part = np.where(wheels, 3, np.where(glass, 2, 5)).astype(np.uint8)
        depth = np.broadcast_to(z_side, mask.shape).astype(np.float32)
        layout.paint(
            rows, cols, mask, label=CAR, instance=instance, surface=surface, normal=N_NEG_X if side_x > 0 else N_POS_X,
            depth=depth, u=np.broadcast_to(along, mask.shape), v=y_side, part=part,
        )  # fmt: skip

    front = _Frontal(cam, z0, rows, cols)
    body = front.rect(cx, w / 2, 0.18, belt)
    cabin = front.trapezoid(cx, 0.46 * w, 0.36 * w, belt, h)
    glass = front.trapezoid(cx, 0.40 * w, 0.31 * w, belt + 0.06, h - 0.07)
    wheels = front.rect(cx - w / 2 + 0.15, 0.12, 0.0, 0.3) | front.rect(cx + w / 2 - 0.15, 0.12, 0.0, 0.3)
    lights = front.rect(cx - w / 2 + 0.2, 0.15, belt - 0.2, belt - 0.05) | front.rect(
        cx + w / 2 - 0.2, 0.15, belt - 0.2, belt - 0.05
    )
    mask = body | cabin | wheels
    part = np.select([lights & body, glass & cabin, wheels & ~body], [4, 2, 3], 1).astype(np.uint8)
    u, v = np.broadcast_arrays(front.x - cx, front.y)
    layout.paint(
        rows, cols, mask, label=CAR, instance=instance, surface=surface, normal=N_FRONT,
        depth=z0, u=u, v=v, part=part,
    )  # fmt: skip


def _paint_person(
    layout: SceneLayout, surface: int, z: float, x: float, size: float, pose: np.ndarray, instance: int
) -> None:
    """Standing / walking pedestrian facing the camera; parts: 1 legs, 2 torso, 3 head."""
    cam = layout.camera
    half = 0.3 * size
    box = _box(cam, [cam.col(x - half, z), cam.col(x + half, z)], [cam.row(0.0, z), cam.row(size, z)])
    if box is None:
        return
    rows, cols = box
    f = _Frontal(cam, z, rows, cols)
    stride = (pose[0] - 0.5) * 0.12 * size  # legs apart when walking
    legs = f.rect(x - 0.05 * size - stride / 2, 0.045 * size, 0.0, 0.48 * size) | f.rect(
        x + 0.05 * size + stride / 2, 0.045 * size, 0.0, 0.48 * size
    )
    torso = f.rect(x, 0.125 * size, 0.46 * size, 0.82 * size)
    swing = (pose[1] - 0.5) * 0.04 * size
    arms = f.rect(x - 0.155 * size - swing, 0.03 * size, 0.5 * size, 0.8 * size) | f.rect(
        x + 0.155 * size + swing, 0.03 * size, 0.5 * size, 0.8 * size
    )
    head = f.ellipse(x, 0.9 * size, 0.06 * size, 0.075 * size) | f.rect(x, 0.025 * size, 0.8 * size, 0.85 * size)
    mask = legs | torso | arms | head
    part = np.select([head, torso | arms], [3, 2], 1).astype(np.uint8)
    u, v = np.broadcast_arrays(f.x - x, f.y / size)
    layout.paint(rows, cols, mask, label=PERSON, instance=instance, surface=surface, normal=N_FRONT,
                 depth=z, u=u, v=v, part=part)  # fmt: skip


def _paint_pole(layout: SceneLayout, surface: int, z: float, pole: dict) -> None:
    """Pole, optionally with a traffic sign (shape 0-3) and a traffic light at the top."""
    cam = layout.camera
    x, h = pole["x"], pole["height"]
    sign_x = x + pole["toward_road"] * 0.35
    box = _box(cam, [cam.col(x - 0.8, z), cam.col(x + 0.8, z)], [cam.row(0.0, z), cam.row(h + 0.1, z)])
    if box is None:
        return
    rows, cols = box
    f = _Frontal(cam, z, rows, cols)
    u, v = np.broadcast_arrays(f.x - x, f.y)
    body = f.rect(x, 0.07, 0.0, h)
    common = dict(surface=surface, normal=N_FRONT, depth=z, v=v)
    layout.paint(rows, cols, body, label=POLE, instance=POLE, u=u, part=1, **common)
    if pole["light"]:
        top = h
        box_mask = f.rect(x, 0.16, top - 0.95, top)
        lamps = [f.ellipse(x, top - 0.2 - 0.28 * i, 0.09, 0.09) for i in range(3)]
        part = np.select(lamps, [2, 3, 4], 1).astype(np.uint8)
        layout.paint(rows, cols, box_mask, label=TRAFFIC_LIGHT, instance=TRAFFIC_LIGHT, u=u, part=part, **common)
    if pole["sign"] >= 0:
        cy = pole["sign_height"]
        su = np.broadcast_to(f.x - sign_x, u.shape)
        shape = pole["sign"]
        if shape == 0:  # round
            outer, inner = f.ellipse(sign_x, cy, 0.32, 0.32), f.ellipse(sign_x, cy, 0.24, 0.24)
        elif shape == 1:  # rectangle
            outer, inner = f.rect(sign_x, 0.34, cy - 0.26, cy + 0.26), f.rect(sign_x, 0.28, cy - 0.2, cy + 0.2)
        elif shape == 2:  # triangle pointing up
            outer = f.trapezoid(sign_x, 0.36, 0.0, cy - 0.3, cy + 0.32)
            inner = f.trapezoid(sign_x, 0.26, 0.0, cy - 0.24, cy + 0.18)
        else:  # triangle pointing down (yield)
            outer = f.trapezoid(sign_x, 0.0, 0.36, cy - 0.32, cy + 0.3)
            inner = f.trapezoid(sign_x, 0.0, 0.26, cy - 0.18, cy + 0.24)
        part = np.where(inner, 2, 1).astype(np.uint8) + np.uint8(10 * shape)
        layout.paint(rows, cols, outer, label=TRAFFIC_SIGN, instance=TRAFFIC_SIGN, u=su, part=part, **common)


def _paint_tree(layout: SceneLayout, surface: int, z: float, tree: dict) -> None:
    """Street tree: trunk + ragged canopy, all labelled vegetation (as in Cityscapes)."""
    cam = layout.camera
    x, trunk, rx, ry = tree["x"], tree["trunk"], tree["rx"], tree["ry"]
    top = trunk + 2 * ry * 1.2
    box = _box(cam, [cam.col(x - rx * 1.3, z), cam.col(x + rx * 1.3, z)], [cam.row(0.0, z), cam.row(top, z)])
    if box is None:
        return
    rows, cols = box
    f = _Frontal(cam, z, rows, cols)
    stem = f.rect(x, 0.13, 0.0, trunk + 0.5)
    canopy = f.blob(x, trunk + ry, rx, ry, tree["wobble"], tree["phase"])
    u, v = np.broadcast_arrays(f.x - x, f.y)
    part = np.where(canopy, 2, 1).astype(np.uint8)
    layout.paint(rows, cols, stem | canopy, label=VEGETATION, instance=VEGETATION, surface=surface,
                 normal=N_FRONT, depth=z, u=u, v=v, part=part)  # fmt: skip


# ----------------------------------------------------------------------- photo


def _smooth_coords(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell index ``[n]`` and smooth-step weight ``[n]`` of ``n`` samples over ``cells`` cells."""
    pos = (np.arange(n) + 0.5) / n * cells
    index = np.clip(np.floor(pos).astype(np.int64), 0, cells - 1)
    t = pos - index
    return index, (t * t * (3 - 2 * t)).astype(np.float32)


def _value_noise(rng: np.random.Generator, height: int, width: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth noise ``float32 [H, W]`` in about [-1, 1] from a ``cells_y x cells_x`` random grid."""
    grid = rng.uniform(-1.0, 1.0, (cells_y + 1, cells_x + 1)).astype(np.float32)
    iy, ty = _smooth_coords(height, cells_y)
    ix, tx = _smooth_coords(width, cells_x)
    ty, tx = ty[:, None], tx[None, :]
    # Bilinear blend of the four surrounding grid values (gathers only; no BLAS threads involved).
    top = grid[iy][:, ix] * (1 - tx) + grid[iy][:, ix + 1] * tx
    bottom = grid[iy + 1][:, ix] * (1 - tx) + grid[iy + 1][:, ix + 1] * tx
    return top * (1 - ty) + bottom * ty


def _aa_line(distance: np.ndarray, half_width: float, pixel_size: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of a line of ``half_width`` metres at ``distance`` metres, pixels of ``pixel_size`` m."""
    return np.clip(0.5 - (np.abs(distance) - half_width) / pixel_size, 0.0, 1.0)


def _mix(base: np.ndarray, colour: np.ndarray, amount: np.ndarray) -> np.ndarray:
    return base + (colour - base) * amount[:, None]


FACADE_COLOURS = np.array(
    [[205, 190, 165], [150, 150, 152], [150, 82, 62], [218, 212, 200], [122, 92, 72], [150, 170, 188], [190, 160, 120]],
    np.float32,
)
CAR_COLOURS = np.array(
    [[235, 235, 235], [25, 25, 28], [160, 162, 168], [150, 20, 25], [30, 50, 120], [70, 72, 78], [200, 190, 150]],
    np.float32,
)
CLOTH_COLOURS = np.array(
    [[30, 32, 40], [40, 55, 95], [120, 30, 35], [200, 200, 195], [90, 90, 92], [150, 120, 80], [40, 90, 60]],
    np.float32,
)
SKIN_COLOURS = np.array([[235, 200, 170], [200, 150, 115], [140, 95, 65], [95, 65, 45]], np.float32)


def render_photo(layout: SceneLayout, rng: np.random.Generator) -> np.ndarray:
    """Render a photo ``uint8 [H, W, 3]`` of ``layout`` with appearance drawn from ``rng``."""
    cam = layout.camera
    height, width = layout.label.shape
    label, part, surface = layout.label, layout.part, layout.surface
    u, v, depth = layout.tex_u, layout.tex_v, layout.depth
    img = np.zeros((height, width, 3), np.float32)
    # Per-surface random numbers: colour choice / jitter / window grid of each facade, car, person.
    surf = rng.random((layout.num_surfaces, 6)).astype(np.float32)
    low = _value_noise(rng, height, width, 3, 6)
    mid = _value_noise(rng, height, width, 12, 24)
    grain = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    # Metres covered by one pixel at each depth (for antialiasing / fading textures).
    pixel_m = np.where(np.isfinite(depth), depth / cam.focal, 1.0).astype(np.float32)

    def jitter(mask: np.ndarray, amount: float) -> np.ndarray:
        """Per-surface colour jitter ``[N, 3]`` for the masked pixels."""
        return (surf[surface[mask], 1:4] - 0.5) * 2 * amount

    # Sky: vertical gradient, sometimes overcast, with soft clouds.
    m = label == SKY
    if m.any():
        overcast = rng.random() < 0.35
        zenith = np.array([150, 155, 162] if overcast else [60, 120, 200], np.float32) + rng.uniform(-15, 15, 3)
        horizon_c = np.array([200, 202, 205] if overcast else [175, 200, 225], np.float32) + rng.uniform(-10, 10, 3)
        t = np.clip((np.nonzero(m)[0] + 0.5) / max(cam.horizon, 1.0), 0, 1).astype(np.float32)
        colour = zenith + (horizon_c - zenith) * t[:, None]
        cloud = np.clip((_value_noise(rng, height, width, 4, 10)[m] - rng.uniform(-0.1, 0.4)) * 2.5, 0, 1)
        img[m] = _mix(colour, np.array([238, 238, 240], np.float32), cloud * rng.uniform(0.5, 1.0))

    # Road: asphalt with grain, dashed lane lines, curb-side edge lines.
    m = label == ROAD
    if m.any():
        base = np.array([88, 88, 92], np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-6, 6, 3)
        colour = base + (6 * mid[m] + 5 * grain[m])[:, None]
        mu, mv, px = u[m], v[m], pixel_m[m]
        period, duty, phase = rng.uniform(8, 12), rng.uniform(0.3, 0.5), rng.uniform(0, 12)
        dashed = ((mv + phase) / period) % 1.0 < duty
        paint = np.zeros_like(mu)
        for line_x in layout.street["lane_lines"]:
            paint = np.maximum(paint, _aa_line(mu - line_x, 0.07, px) * dashed)
        for edge_x in layout.street["road"]:
            paint = np.maximum(paint, _aa_line(mu - edge_x - 0.35 * np.sign(-edge_x), 0.06, px) * 0.8)
        img[m] = _mix(colour, np.array([225, 225, 215], np.float32), paint)

    # Sidewalk: paving tiles and a lighter curb.
    m = label == SIDEWALK
    if m.any():
        base = np.array([160, 155, 148], np.float32) * rng.uniform(0.8, 1.15) + rng.uniform(-8, 8, 3)
        mu, mv, px = u[m], v[m], pixel_m[m]
        tile = rng.uniform(0.4, 1.0)
        # distance to the nearest tile joint, in tile units, along each direction
        joint_u = _aa_line((mu / tile + 0.5) % 1.0 - 0.5, 0.02, px / tile)
        joint_v = _aa_line((mv / tile + 0.5) % 1.0 - 0.5, 0.02, px / tile)
        joints = np.maximum(joint_u, joint_v)
        road_l, road_r = layout.street["road"]
        curb = np.clip(1.0 - np.minimum(np.abs(mu - road_l), np.abs(mu - road_r)) / 0.25, 0, 1)
        colour = base + (8 * mid[m] + 6 * grain[m] - 35 * joints + 30 * curb)[:, None]
        img[m] = colour

    # Terrain: grass to dry earth.
    m = label == TERRAIN
    if m.any():
        grass, earth = np.array([105, 135, 60], np.float32), np.array([140, 120, 85], np.float32)
        base = grass + (earth - grass) * rng.uniform(0, 0.7)
        img[m] = base + (18 * mid[m] + 10 * grain[m])[:, None] * np.array([0.8, 1.0, 0.6], np.float32)

    # Vegetation: mottled greens, canopy lighter at the top; trunks brown.
    m = label == VEGETATION
    if m.any():
        base = np.array([62, 92, 38], np.float32) * rng.uniform(0.75, 1.25) + jitter(m, 12)
        leaf = 22 * mid[m] + 14 * grain[m] + 10 * np.sin(u[m] * 9.0) * np.sin(v[m] * 7.0)
        colour = base + leaf[:, None] * np.array([0.7, 1.0, 0.5], np.float32)
        trunk = (part[m] == 1) & (np.abs(u[m]) < 0.2)
        colour[trunk] = np.array([85, 65, 45], np.float32) + 8 * grain[m][trunk, None]
        img[m] = colour

    # Buildings: facade colour per block, grid of windows in facade coordinates.
    m = label == BUILDING
    if m.any():
        s = surf[surface[m]]
        colour = FACADE_COLOURS[(s[:, 0] * len(FACADE_COLOURS)).astype(int)] + jitter(m, 18)
        mu, mv, px = u[m], v[m], pixel_m[m]
        spacing = 2.4 + 1.6 * s[:, 4]
        floor_h = 2.9 + 0.7 * s[:, 5]
        fu = (mu / spacing + s[:, 1]) % 1.0
        fv = (mv / floor_h) % 1.0
        window = (fu > 0.22) & (fu < 0.72) & (fv > 0.3) & (fv < 0.82) & (mv > 3.2)
        cell = np.floor(mu / spacing) * 7 + np.floor(mv / floor_h) * 13  # lit / reflecting variation per window
        glass = np.array([55, 65, 80], np.float32) + (25 * np.sin(cell * 1.7 + s[:, 2] * 6))[:, None]
        visible = np.clip(spacing / px / 4.0, 0, 1)  # fade windows smaller than a few pixels
        shop = mv < 3.0
        colour = _mix(colour, glass, window * visible * 0.9)
        colour[shop] *= 0.75
        img[m] = colour + (6 * grain[m] + 10 * mid[m])[:, None]

    # Walls and fences.
    m = label == WALL
    if m.any():
        seams = _aa_line((v[m] / 0.6 + 0.5) % 1.0 - 0.5, 0.02, pixel_m[m] / 0.6)
        img[m] = np.array([150, 145, 135], np.float32) + jitter(m, 15) + (8 * grain[m] - 25 * seams)[:, None]
    m = label == FENCE
    if m.any():
        slats = 0.5 + 0.5 * np.sin(u[m] * 2 * np.pi / 0.15) * np.clip(0.15 / pixel_m[m] / 3, 0, 1)
        img[m] = np.array([120, 100, 80], np.float32) + jitter(m, 20) + (30 * slats + 6 * grain[m])[:, None]

    # Poles: metal with cylinder shading across the width.
    m = label == POLE
    if m.any():
        across = np.clip(np.abs(u[m]) / 0.07, 0, 1)
        img[m] = np.array([125, 125, 120], np.float32) * rng.uniform(0.7, 1.2) + (40 * (0.5 - across))[:, None]

    # Traffic lights: dark housing, one lamp lit.
    m = label == TRAFFIC_LIGHT
    if m.any():
        lit = 2 + (surf[surface[m], 4] * 3).astype(int)  # lamp 2 red / 3 amber / 4 green per pole
        colour = np.tile(np.array([38, 38, 34], np.float32), (int(m.sum()), 1))
        lamp_colours = {2: [255, 40, 30], 3: [255, 190, 20], 4: [40, 255, 110]}
        for lamp, rgb in lamp_colours.items():
            on = part[m] == lamp
            colour[on] = np.where((lit[on] == lamp)[:, None], rgb, np.array(rgb, np.float32) * 0.25)
        img[m] = colour + 4 * grain[m][:, None]

    # Traffic signs: style per shape; part 1 border, 2 face (+10 * shape).
    m = label == TRAFFIC_SIGN
    if m.any():
        styles = {  # shape -> (border, face)
            0: ([200, 20, 25], [240, 240, 235]),
            1: ([235, 235, 235], [25, 80, 170]),
            2: ([200, 20, 25], [245, 235, 215]),
            3: ([210, 25, 30], [245, 245, 240]),
        }
        pm = part[m]
        colour = np.zeros((int(m.sum()), 3), np.float32)
        for shape, (border, face) in styles.items():
            colour[pm == 10 * shape + 1] = border
            colour[pm == 10 * shape + 2] = face
        img[m] = colour * rng.uniform(0.8, 1.1) + 6 * grain[m][:, None]

    # Cars: paint per car, glass, wheels, tail lights; body darker towards the ground.
    m = label == CAR
    if m.any():
        s = surf[surface[m]]
        paint = CAR_COLOURS[(s[:, 0] * len(CAR_COLOURS)).astype(int)] + jitter(m, 20)
        pm, mv = part[m], v[m]
        colour = paint * (0.75 + 0.25 * np.clip(mv / 1.0, 0, 1))[:, None]
        colour[pm == 2] = np.array([40, 50, 62], np.float32) + 30 * np.clip(mv[pm == 2] - 1.0, 0, 1)[:, None]
        colour[pm == 3] = np.array([22, 22, 24], np.float32)
        colour[pm == 4] = np.array([190, 25, 20], np.float32)
        img[m] = colour + 5 * grain[m][:, None]

    # Persons: trousers, shirt, skin with hair on top of the head.
    m = label == PERSON
    if m.any():
        s = surf[surface[m]]
        pm = part[m]
        trousers = CLOTH_COLOURS[(s[:, 0] * len(CLOTH_COLOURS)).astype(int)]
        shirt = CLOTH_COLOURS[(s[:, 4] * len(CLOTH_COLOURS)).astype(int)] + jitter(m, 30)
        skin = SKIN_COLOURS[(s[:, 5] * len(SKIN_COLOURS)).astype(int)]
        hair = np.array([40, 30, 22], np.float32)
        colour = np.where((pm == 1)[:, None], trousers, np.where((pm == 2)[:, None], shirt, skin))
        colour[(pm == 3) & (v[m] > 0.92)] = hair
        img[m] = colour + 6 * grain[m][:, None]

    # Anything else (not produced by layout_scene, but keep the renderer total): official colour.
    known = np.isin(label, [SKY, ROAD, SIDEWALK, TERRAIN, VEGETATION, BUILDING, WALL, FENCE, POLE,
                            TRAFFIC_LIGHT, TRAFFIC_SIGN, CAR, PERSON])  # fmt: skip
    for label_id in np.unique(label[~known]):
        img[label == label_id] = id2label[int(label_id)].color

    # Lighting: sun from one side lights one facade / object side, shades the other.
    sun = rng.uniform(0.55, 1.1, 2)
    brightness = np.array([1.0, 1.0, sun[0], sun[1], rng.uniform(0.75, 1.05)], np.float32)
    img *= (brightness[layout.normal] * (1.0 + 0.12 * low))[..., None]
    # Distance haze towards a pale sky colour.
    haze = np.array([190, 195, 205], np.float32) + rng.uniform(-15, 15, 3)
    finite = np.isfinite(depth)
    amount = np.zeros((height, width), np.float32)
    amount[finite] = 1.0 - np.exp(-depth[finite] / rng.uniform(90.0, 300.0))
    img += (haze - img) * amount[..., None]
    # White balance, exposure and sensor noise.
    img *= rng.uniform(0.9, 1.1, 3).astype(np.float32) * rng.uniform(0.85, 1.15)
    img += rng.normal(0.0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_scene(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random scene: ``(label_ids uint8 [H,W], instance_ids int32 [H,W], image uint8 [H,W,3])``."""
    layout = layout_scene(rng, size)
    return layout.label, layout.instance, render_photo(layout, rng)


# ------------------------------------------------------------------ dataset files


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Generator for image ``index`` of ``split``: independent of the order / process that makes it."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index)]))


def file_stem(index: int) -> str:
    return f"{CITY}_{index:06d}_000019"


def _write_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=4)


def _split_dirs(root: Path, split: str) -> tuple[Path, Path]:
    return root / "leftImg8bit" / split / CITY, root / "gtFine" / split / CITY


def _generate_image(job: tuple[str, str, int, tuple[int, int], int]) -> np.ndarray:
    """Worker: write image ``index`` of ``split`` under ``root``; returns pixel counts per label id ``int64 [256]``."""
    root, split, index, size, seed = job
    image_dir, label_dir = _split_dirs(Path(root), split)
    label, instance, image = render_scene(scene_rng(seed, split, index), size)
    stem = file_stem(index)
    _write_png(image, image_dir / f"{stem}_leftImg8bit.png")
    _write_png(label, label_dir / f"{stem}_gtFine_labelIds.png")
    _write_png(instance.astype(np.uint16), label_dir / f"{stem}_gtFine_instanceIds.png")
    return np.bincount(label.ravel(), minlength=256)


def _check_counts(num_train: int, num_val: int, size: tuple[int, int], seed: int) -> tuple[int, int]:
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if num_train + num_val == 0:
        raise ValueError("num_train + num_val must be at least 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    width, height = parse_size(size, "size")
    if width < 8 or height < 8:
        raise ValueError(f"size must be at least 8x8 pixels, got {width}x{height}")
    return width, height


def _wanted(num_train: int, num_val: int, size: tuple[int, int], seed: int) -> dict:
    """The summary entries that identify a synthetic city (the rest is timing and statistics)."""
    return {"num_train": num_train, "num_val": num_val, "size": list(size), "seed": seed,
            "version": SYNTH_CITY_VERSION}  # fmt: skip


def _is_complete(root: Path, num_train: int, num_val: int, size: tuple[int, int], seed: int) -> bool:
    counts = {f"leftImg8bit/{split}/{CITY}/*_leftImg8bit.png": count
              for split, count in (("train", num_train), ("val", num_val))}
    return is_complete(root, META_FILE, _wanted(num_train, num_val, size, seed), counts)


def generate_synth_city(
    out_dir: str | Path,
    num_train: int = 500,
    num_val: int = 100,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Generate the synthetic city into ``out_dir`` (Cityscapes layout) and return a summary dict.

    Everything is written into a temporary folder beside ``out_dir`` which is
    renamed into place at the end (see :func:`lggan.data.storage.build_atomically`),
    so an interrupted run leaves no partial dataset. Output bytes depend only on
    ``(num_train, num_val, size, seed)``, not on ``workers``.

    Args:
        out_dir: destination; must not exist or be empty unless ``overwrite``.
        size: ``(width, height)`` of every image.
        workers: processes to use (``None``: :func:`lggan.data.storage.default_workers`; 0 or 1: this process).
        progress: show a progress bar (lines off a terminal: lggan.progress).
        overwrite: replace an existing ``out_dir``.
    """
    size = _check_counts(num_train, num_val, size, seed)
    check_workers(workers)
    out_dir = Path(out_dir).expanduser().resolve()
    started = time.perf_counter()

    def fill(tmp: Path) -> dict:
        for split in SPLIT_CODES:
            for folder in _split_dirs(tmp, split):
                folder.mkdir(parents=True)
        jobs = [(str(tmp), split, index, size, seed)
                for split, count in (("train", num_train), ("val", num_val)) for index in range(count)]  # fmt: skip
        counts = np.zeros(256, np.int64)
        for image_counts in run_jobs(_generate_image, jobs, workers, progress, desc="synth-city", unit="img"):
            counts += image_counts
        summary = _summary(out_dir, num_train, num_val, size, seed, counts, time.perf_counter() - started)
        write_json(tmp / META_FILE, summary)
        return summary

    complete = partial(_is_complete, num_train=num_train, num_val=num_val, size=size, seed=seed)
    return build_atomically(out_dir, fill, overwrite=overwrite, is_complete=complete, ours=is_synth_city)


def _summary(
    root: Path, num_train: int, num_val: int, size: tuple[int, int], seed: int, counts: np.ndarray, seconds: float
) -> dict:
    total = int(counts.sum())
    classes = {
        id2label[i].name: {"id": i, "pixels": int(counts[i]), "percent": 100.0 * float(counts[i]) / max(total, 1)}
        for i in np.nonzero(counts)[0].tolist()
    }
    return {
        "generator": "lggan synth-city",
        "version": SYNTH_CITY_VERSION,
        "root": str(root),
        "num_train": num_train,
        "num_val": num_val,
        "size": list(size),
        "seed": seed,
        "seconds": round(seconds, 3),
        "classes": classes,
    }


def default_synth_city_root(
    num_train: int = 500, num_val: int = 100, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0
) -> Path:
    """Cache folder whose name records generator version, size, counts and seed."""
    width, height = _check_counts(num_train, num_val, size, seed)
    name = f"synth_city_v{SYNTH_CITY_VERSION}_{width}x{height}_train{num_train}_val{num_val}_seed{seed}"
    return cache_dir() / name


def is_synth_city(root: str | Path) -> bool:
    """Whether ``root`` holds a completed synthetic city."""
    return (Path(root) / META_FILE).is_file()


def summarize_synth_city(root: str | Path) -> dict:
    """Summary dict stored by :func:`generate_synth_city` in ``root``."""
    meta = Path(root) / META_FILE
    if not meta.is_file():
        raise FileNotFoundError(f"{root} is not a generated synthetic city (missing {META_FILE})")
    try:
        return json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta}: corrupt summary file ({exc})") from None


def ensure_synth_city(
    root: str | Path | None = None,
    *,
    num_train: int = 500,
    num_val: int = 100,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Return a synthetic-city root, generating it on first use only.

    ``root=None`` uses :func:`default_synth_city_root`. An existing root must
    hold a synthetic city made with the same parameters.
    """
    width, height = _check_counts(num_train, num_val, size, seed)
    root = Path(root).expanduser() if root is not None else default_synth_city_root(num_train, num_val, size, seed)
    if (root / META_FILE).is_file():
        wanted = _wanted(num_train, num_val, (width, height), seed)
        meta = summarize_synth_city(root)
        found = {key: meta.get(key) for key in wanted}
        if found != wanted:
            raise ValueError(f"{root} holds a synthetic city with {found}, not the requested {wanted}")
        return root
    generate = partial(generate_synth_city, num_train=num_train, num_val=num_val, size=(width, height), seed=seed,
                       workers=workers, progress=progress)
    complete = partial(_is_complete, num_train=num_train, num_val=num_val, size=(width, height), seed=seed)
    return ensure_built(root, complete, generate)


def format_synth_summary(summary: dict) -> str:
    """Readable text for the CLI: where, how many, how long, and class pixel shares."""
    width, height = summary["size"]
    lines = [
        f"synthetic city v{summary['version']} at {summary['root']}",
        f"  {summary['num_train']} train + {summary['num_val']} val images of {width}x{height}, "
        f"seed {summary['seed']}, generated in {summary['seconds']:.1f} s",
        f"  {'id':>3}  {'class':<14} {'% pixels':>9}",
    ]
    for name, entry in sorted(summary["classes"].items(), key=lambda item: item[1]["id"]):
        lines.append(f"  {entry['id']:>3}  {name:<14} {entry['percent']:>8.3f}%")
    return "\n".join(lines)
