"""Built-in synthetic cross-view dataset: random small towns seen from above and from the street.

A town is a 2.5D height map on a 0.5 m grid (roads with sidewalks and lane
markings, grass, buildings with facades and roofs, trees, parked and moving
cars, street-light poles). Each sample renders

* an aerial photo: orthographic top-down view centred on the street camera and
  rotated so the camera's viewing direction points up (as in Dayton), with
  hill-shading and cast sun shadows, and its class map;
* a street-level perspective photo (90 degree horizontal field of view, camera
  2.5 m above a road lane, looking along the road, level so the horizon is the
  image's middle line) by a column ray-caster over the height map, with sky,
  fog, facade windows and shadows, and its class map.

Classes are the 6 groups of :mod:`lggan.data.crossview`. Colour segmentations
use the representative Cityscapes colour of each group (car, road, pole,
building, sky, vegetation) except grass, which is class 2 (flat ground, like
Cityscapes' terrain in this grouping) drawn with the terrain colour; sidewalks
are class 2 with the road colour. So ``mask_from_color`` of a colour panel
equals the gray mask of the same view.

Samples are written in the 6-panel format (A aerial | B street | C aerial
colour seg | D street colour seg | E aerial gray mask | F street gray mask) as
PNG into ``ROOT/{train,test}`` so :class:`~lggan.data.crossview.CrossViewDataset`
reads them. Sample ``(seed, split, index)`` is rendered from its own RNG, so
the output does not depend on the number of workers.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lggan.data.crossview import (
    CROSSVIEW_CLASS_NAMES,
    CROSSVIEW_NUM_CLASSES,
    CROSSVIEW_PALETTE,
    join_panels,
    label_to_gray,
)
from lggan.data.storage import (
    build_atomically,
    cache_dir,
    check_workers,
    ensure_built,
    is_complete,
    run_jobs,
    write_json,
)

__all__ = [
    "MATERIAL_CLASS",
    "MATERIAL_NAMES",
    "MATERIAL_SEG_COLOR",
    "SYNTH_VIEWS_VERSION",
    "default_synth_views_root",
    "ensure_synth_views",
    "generate_synth_views",
    "render_views",
]

SYNTH_VIEWS_VERSION = 1
MANIFEST_NAME = "synth_views.json"
SPLIT_CODES = {"train": 0, "test": 1}

# Materials of the height map: photo appearance differs per material, class and
# colour segmentation come from these tables.
ROAD, SIDEWALK, GRASS, BUILDING, TREE, CAR, POLE, SKY = range(8)
MATERIAL_NAMES = ("road", "sidewalk", "grass", "building", "tree", "car", "pole", "sky")
# 0-based classes: 0 vehicle, 1 flat, 2 small object, 3 structure, 4 sky, 5 vegetation.
MATERIAL_CLASS = np.array([1, 1, 1, 3, 5, 0, 2, 4], dtype=np.uint8)
_TERRAIN_RGB = (152, 251, 152)
MATERIAL_SEG_COLOR = CROSSVIEW_PALETTE[MATERIAL_CLASS].copy()
MATERIAL_SEG_COLOR[GRASS] = _TERRAIN_RGB
MATERIAL_SEG_COLOR.setflags(write=False)

CELL = 0.5  # metres per height-map cell
WORLD_CELLS = 576  # 288 m square world
CAMERA_HEIGHT = 2.5  # metres above the road
CAMERA_RANGE = 16.0  # camera within +-16 m of the world centre along its road
VIEW_DISTANCE = 125.0  # street-view ray length (m); the world covers it from any camera
AERIAL_EXTENT = 96.0  # metres covered by the aerial panel's side
STREET_FOV = math.radians(90.0)
SHADOW_STEP = 0.5  # metres per shadow-ray step (one cell, so poles cast shadows)
TILE = 128  # texture tile side (texels)

# Texture strength and frequency (texels per metre) per material.
_TEX_AMP = np.array([0.07, 0.06, 0.22, 0.07, 0.35, 0.03, 0.05, 0.0], dtype=np.float32)
_TEX_FREQ = np.array([3.0, 4.0, 5.0, 2.0, 6.0, 4.0, 4.0, 1.0], dtype=np.float32)


@dataclass
class _Town:
    """A random town: height map, materials and albedos on a ``[N, N]`` grid (row = y, col = x)."""

    height: np.ndarray  # [N, N] float32 metres
    material: np.ndarray  # [N, N] uint8
    top_rgb: np.ndarray  # [N, N, 3] float32 albedo of top surfaces (roofs, ground)
    side_rgb: np.ndarray  # [N, N, 3] float32 albedo of vertical faces (facades)
    cam: np.ndarray  # [2] camera position (x, y) in metres
    forward: np.ndarray  # [2] unit viewing direction
    right: np.ndarray  # [2] unit right-hand direction (aerial image x axis)
    sun: np.ndarray  # [3] unit vector towards the sun (x, y, z)
    tiles: np.ndarray  # [2, TILE, TILE] float32 tileable noise, zero mean, unit std
    window_floor: float  # facade storey height (m)
    window_bay: float  # facade window spacing (m)
    haze: np.ndarray  # [3] fog / horizon colour
    zenith: np.ndarray  # [3] sky colour overhead
    fog_distance: float  # metres
    cloudiness: float


# --------------------------------------------------------------------------- town


def _noise_tiles(rng: np.random.Generator) -> np.ndarray:
    """Two tileable noise textures from filtered white noise: smooth (1/f^2) and grainy (1/f)."""
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(TILE), np.fft.rfftfreq(TILE), indexing="ij"))  # [T, T/2+1]
    freq[0, 0] = 1.0
    tiles = []
    for power in (2.0, 1.0):
        spectrum = np.fft.rfft2(rng.standard_normal((TILE, TILE))) / freq**power
        spectrum[0, 0] = 0.0
        tile = np.fft.irfft2(spectrum, s=(TILE, TILE))
        tiles.append(tile / tile.std())
    return np.stack(tiles).astype(np.float32)


def _road_centres(rng: np.random.Generator, world: float) -> list[float]:
    """Road centre lines across the world, one near the middle (the camera's), 36-64 m apart."""
    centres = [world / 2 + rng.uniform(-4.0, 4.0)]
    while centres[-1] < world:
        centres.append(centres[-1] + rng.uniform(36.0, 64.0))
    while centres[0] > 0:
        centres.insert(0, centres[0] - rng.uniform(36.0, 64.0))
    return centres


def _cells(lo: float, hi: float) -> slice:
    """Cell slice covering the metre interval [lo, hi), clipped to the world."""
    return slice(min(max(round(lo / CELL), 0), WORLD_CELLS), min(max(round(hi / CELL), 0), WORLD_CELLS))


Road = tuple[float, float, float]  # (centre line, half width, sidewalk width) in metres
Tree = tuple[float, float, float, float]  # (x, y, crown radius, top height) in metres


@dataclass
class _Grid:
    """The town's rasters while it is being built (row = y, col = x, 0.5 m cells)."""

    height: np.ndarray  # [N, N] float32 metres
    material: np.ndarray  # [N, N] uint8
    top: np.ndarray  # [N, N, 3] float32 albedo seen from above
    side: np.ndarray  # [N, N, 3] float32 albedo of vertical faces


def _band(axis: str, lo: float, hi: float) -> tuple[slice, slice]:
    """Cells of a full-length strip: constant-x road (``axis="x"``) or constant-y road."""
    return (slice(None), _cells(lo, hi)) if axis == "x" else (_cells(lo, hi), slice(None))


def _lay_roads(rng: np.random.Generator, grid: _Grid, roads: dict[str, list[Road]]) -> None:
    """Paint sidewalks, then asphalt (so junctions are all road), then dashed centre lines."""
    walk_rgb = np.full(3, rng.uniform(0.5, 0.65)) * rng.uniform(0.95, 1.05, 3)
    road_rgb = np.full(3, rng.uniform(0.22, 0.32)) * rng.uniform(0.95, 1.05, 3)
    for axis, items in roads.items():
        for c, half, walk in items:
            sl = _band(axis, c - half - walk, c + half + walk)
            grid.material[sl], grid.top[sl] = SIDEWALK, walk_rgb
    for axis, items in roads.items():
        for c, half, _ in items:
            sl = _band(axis, c - half, c + half)
            grid.material[sl], grid.top[sl] = ROAD, road_rgb
    dashes = (np.arange(WORLD_CELLS) * CELL) % 9.0 < 3.0  # [N] 3 m paint, 6 m gap
    paint = np.array([0.85, 0.82, 0.6]) if rng.random() < 0.3 else np.array([0.85, 0.85, 0.85])
    for axis, items in roads.items():
        for c, _, _ in items:
            sl = _band(axis, c - 0.25, c + 0.25)
            on = (grid.material[sl] == ROAD) & (dashes[:, None] if axis == "x" else dashes[None, :])
            grid.top[sl] = np.where(on[..., None], paint, grid.top[sl])


def _fill_blocks(rng: np.random.Generator, grid: _Grid, roads: dict[str, list[Road]], trees: list[Tree]) -> None:
    """Fill each block between roads as urban (tall, dense), suburban (houses, yard trees) or park."""

    def gaps(items: list[Road]) -> list[tuple[float, float]]:
        return [(a + ha + wa, b - hb - wb) for (a, ha, wa), (b, hb, wb) in zip(items, items[1:])]

    for x0, x1 in gaps(roads["x"]):
        for y0, y1 in gaps(roads["y"]):
            kind = rng.choice(3, p=[0.45, 0.4, 0.15])  # urban, suburban, park
            if kind == 2:
                for _ in range(rng.poisson((x1 - x0) * (y1 - y0) / 90.0)):
                    trees.append((rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(1.8, 4.0), rng.uniform(6, 12)))
                continue
            lot = rng.uniform(12, 22) if kind == 0 else rng.uniform(14, 22)
            xs = np.linspace(x0, x1, max(1, round((x1 - x0) / lot)) + 1)
            ys = np.linspace(y0, y1, max(1, round((y1 - y0) / lot)) + 1)
            for lx0, lx1 in zip(xs, xs[1:]):
                for ly0, ly1 in zip(ys, ys[1:]):
                    if kind == 0:
                        inset, levels, occupied = rng.uniform(0.5, 2.0, 4), rng.uniform(8, 24), rng.random() < 0.9
                    else:
                        inset, levels, occupied = rng.uniform(2.5, 6.0, 4), rng.uniform(4, 8), rng.random() < 0.75
                        for _ in range(rng.integers(0, 3)):
                            trees.append((rng.uniform(lx0, lx1), rng.uniform(ly0, ly1), rng.uniform(1.5, 3.0),
                                          rng.uniform(4, 9)))  # fmt: skip
                    if not occupied or lx1 - lx0 - inset[:2].sum() < 4 or ly1 - ly0 - inset[2:].sum() < 4:
                        continue
                    sl = (_cells(ly0 + inset[2], ly1 - inset[3]), _cells(lx0 + inset[0], lx1 - inset[1]))
                    grid.height[sl], grid.material[sl] = levels, BUILDING
                    grid.top[sl] = np.full(3, rng.uniform(0.3, 0.6)) * rng.uniform(0.8, 1.2, 3) * [1.0, 0.9, 0.85]
                    tint = np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.6, 1.0)])
                    grid.side[sl] = rng.uniform(0.35, 0.8) * tint


def _line_streets(
    rng: np.random.Generator, grid: _Grid, roads: dict[str, list[Road]], trees: list[Tree], cam: np.ndarray
) -> None:
    """Street trees and poles along both sidewalks of every road; parked and moving cars on it."""
    world = WORLD_CELLS * CELL
    cars: list[tuple[float, float, str, np.ndarray]] = []
    for axis, items in roads.items():
        for c, half, walk in items:
            for sign in (-1.0, 1.0):
                pos = rng.uniform(0, 10)
                while pos < world:
                    if rng.random() < 0.35:  # tree just behind the sidewalk
                        off = c + sign * (half + walk + 1.0)
                        x, y = (off, pos) if axis == "x" else (pos, off)
                        trees.append((x, y, rng.uniform(1.5, 2.8), rng.uniform(5, 9)))
                    elif rng.random() < 0.5:  # pole on the sidewalk next to the curb
                        off = c + sign * (half + 0.5)
                        x, y = (off, pos) if axis == "x" else (pos, off)
                        pole = (_cells(y - 0.25, y + 0.25), _cells(x - 0.25, x + 0.25))
                        if np.all(grid.material[pole] == SIDEWALK):
                            grid.height[pole], grid.material[pole] = rng.uniform(5.5, 8.0), POLE
                            grid.top[pole] = grid.side[pole] = rng.uniform(0.35, 0.55)
                    pos += rng.uniform(8, 16)
                pos = rng.uniform(0, 8)
                while pos < world:
                    lane = c + sign * (half - 1.2 if rng.random() < 0.6 else half / 2)  # curb or driving lane
                    if rng.random() < 0.45:
                        colour = rng.uniform(0.05, 0.9, 3) if rng.random() < 0.6 else np.full(3, rng.uniform(0.05, 0.9))
                        cars.append(((lane, pos) if axis == "x" else (pos, lane)) + (axis, colour))
                    pos += rng.uniform(5.5, 12)
    for x, y, axis, colour in cars:
        if math.hypot(x - cam[0], y - cam[1]) < 8.0:  # keep the camera's spot and the view's start clear
            continue
        hx, hy = (0.9, 2.2) if axis == "x" else (2.2, 0.9)
        sl = (_cells(y - hy, y + hy), _cells(x - hx, x + hx))
        if not np.all(grid.material[sl] == ROAD):
            continue
        grid.material[sl], grid.top[sl], grid.side[sl] = CAR, colour, colour
        # Body 1.0 m high with a 1.5 m cabin over the middle half of the car's length.
        body = np.ones(grid.material[sl].shape, np.float32)
        length = body.shape[0] if axis == "x" else body.shape[1]
        cabin = slice(length // 4, length - length // 4)
        body[(cabin, slice(None)) if axis == "x" else (slice(None), cabin)] = 1.5
        grid.height[sl] = body


def _plant_trees(rng: np.random.Generator, grid: _Grid, trees: list[Tree]) -> None:
    """Domed crowns on grass and sidewalks (never on roads, buildings, cars or poles)."""
    for x, y, radius, top_h in trees:
        reach = int(radius / CELL) + 1
        ci, cj = int(y / CELL), int(x / CELL)
        rows = np.arange(max(ci - reach, 0), min(ci + reach + 1, WORLD_CELLS))
        cols = np.arange(max(cj - reach, 0), min(cj + reach + 1, WORLD_CELLS))
        if rows.size == 0 or cols.size == 0:
            continue
        # Squared distance of each cell centre from the trunk, in crown radii: [rows, cols].
        r2 = (((rows[:, None] + 0.5) * CELL - y) ** 2 + ((cols[None, :] + 0.5) * CELL - x) ** 2) / radius**2
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        free = (r2 < 1.0) & np.isin(grid.material[sl], (GRASS, SIDEWALK, TREE))
        dome = top_h * (0.7 + 0.3 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))) + rng.uniform(-0.3, 0.3, r2.shape)
        leaf = np.array([0.16, 0.3, 0.08]) * rng.uniform(0.75, 1.25, 3)
        grid.height[sl] = np.where(free, np.maximum(grid.height[sl], dome), grid.height[sl])
        grid.material[sl] = np.where(free, TREE, grid.material[sl])
        grid.top[sl] = np.where(free[..., None], leaf, grid.top[sl])
        grid.side[sl] = np.where(free[..., None], leaf * 0.85, grid.side[sl])


def _make_town(rng: np.random.Generator) -> _Town:
    """Lay out roads, blocks of buildings / yards / parks, trees, cars and poles; place camera and sun."""
    n, world = WORLD_CELLS, WORLD_CELLS * CELL
    grass = np.array([0.30, 0.42, 0.16]) * rng.uniform(0.85, 1.15, 3)
    top = np.empty((n, n, 3), np.float32)
    top[:] = grass
    grid = _Grid(np.zeros((n, n), np.float32), np.full((n, n), GRASS, np.uint8), top, top.copy())
    roads = {
        axis: [(c, rng.uniform(3.5, 5.5), rng.uniform(1.5, 2.5)) for c in _road_centres(rng, world)]
        for axis in ("x", "y")
    }
    _lay_roads(rng, grid, roads)

    # Camera: on the middle road of a random axis, in a lane, looking along the road (+-12 degrees).
    axis = "x" if rng.random() < 0.5 else "y"
    centre, half, _ = min(roads[axis], key=lambda r: abs(r[0] - world / 2))
    lateral = centre + rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.45) * half
    along_pos = world / 2 + rng.uniform(-CAMERA_RANGE, CAMERA_RANGE)
    cam = np.array([lateral, along_pos] if axis == "x" else [along_pos, lateral])
    base = (math.pi / 2 if axis == "x" else 0.0) + (math.pi if rng.random() < 0.5 else 0.0)
    heading = base + math.radians(rng.uniform(-12.0, 12.0))
    forward = np.array([math.cos(heading), math.sin(heading)])
    # The world is drawn with y pointing down the image, so "right" is forward turned clockwise.
    right = np.array([-forward[1], forward[0]])

    trees: list[Tree] = []
    _fill_blocks(rng, grid, roads, trees)
    _line_streets(rng, grid, roads, trees, cam)
    _plant_trees(rng, grid, trees)
    # Only facades and crowns have their own side colour; other cells look the same from any side.
    side = np.where(np.isin(grid.material, (BUILDING, TREE))[..., None], grid.side, grid.top)

    elevation, azimuth = math.radians(rng.uniform(35, 65)), rng.uniform(0, 2 * math.pi)
    sun = np.array([math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation),
                    math.sin(elevation)])  # fmt: skip
    return _Town(
        height=grid.height,
        material=grid.material,
        top_rgb=grid.top,
        side_rgb=side.astype(np.float32),
        cam=cam,
        forward=forward,
        right=right,
        sun=sun,
        tiles=_noise_tiles(rng),
        window_floor=rng.uniform(2.8, 3.6),
        window_bay=rng.uniform(2.2, 3.5),
        haze=np.array([0.78, 0.82, 0.86]) * rng.uniform(0.9, 1.1),
        zenith=np.array([0.25, 0.45, 0.8]) * rng.uniform(0.8, 1.15, 3),
        fog_distance=rng.uniform(150, 400),
        cloudiness=rng.uniform(0.0, 0.8),
    )


# --------------------------------------------------------------------------- rendering


def _cell_index(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Flat height-map index of world points (metres); points off the world clamp to its edge."""
    i = np.clip((y / CELL).astype(np.int64), 0, WORLD_CELLS - 1)
    j = np.clip((x / CELL).astype(np.int64), 0, WORLD_CELLS - 1)
    return i * WORLD_CELLS + j


def _texture(town: _Town, material: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Multiplicative texture ``1 + amp * noise`` at surface coordinates (u, v) in metres."""
    freq = _TEX_FREQ[material]
    iu = (u * freq).astype(np.int64) % TILE
    iv = (v * freq).astype(np.int64) % TILE
    # Smooth blotches plus grain; the 0.37 scale decorrelates the two lookups.
    noise = 0.6 * town.tiles[0][(iv * 3 // 8) % TILE, (iu * 3 // 8) % TILE] + 0.4 * town.tiles[1][iv, iu]
    return 1.0 + _TEX_AMP[material] * noise


def _in_shadow(town: _Town, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """March from each point towards the sun; True where the height map blocks it."""
    flat = town.height.ravel()
    horizontal = math.hypot(town.sun[0], town.sun[1])
    dx, dy = town.sun[0] / horizontal * SHADOW_STEP, town.sun[1] / horizontal * SHADOW_STEP
    rise = SHADOW_STEP * town.sun[2] / horizontal  # metres climbed per step
    steps = int(math.ceil(float(flat.max()) / rise)) + 1
    shadow = np.zeros(x.shape, bool)
    for k in range(1, steps + 1):
        shadow |= flat[_cell_index(x + k * dx, y + k * dy)] > z + k * rise
    return shadow


def _lighting(town: _Town, normal: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """Ambient + Lambert sun light, normalised so sunlit flat ground is 1. ``normal [..., 3]``."""
    lambert = np.clip(normal @ town.sun, 0.0, None) / town.sun[2]
    return 0.45 + 0.55 * lambert * ~shadow


def _finish(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Camera response: exposure, white balance and sensor noise; float [H, W, 3] -> uint8."""
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3)
    noisy = rgb * gain * 255.0 + rng.normal(0.0, rng.uniform(1.5, 4.0), rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _render_aerial(town: _Town, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-down photo (float [S, S, 3]) and material map (uint8 [S, S]), camera heading up."""
    mpp = AERIAL_EXTENT / size
    offsets = (np.arange(size) + 0.5 - size / 2) * mpp  # [S]
    ahead, aside = -offsets[:, None], offsets[None, :]  # rows go backwards, columns right
    x = town.cam[0] + ahead * town.forward[0] + aside * town.right[0]  # [S, S]
    y = town.cam[1] + ahead * town.forward[1] + aside * town.right[1]
    idx = _cell_index(x, y)
    material = town.material.ravel()[idx]
    z = town.height.ravel()[idx]
    # Surface normals from the height map's gradient (edges of roofs and crowns catch light).
    gy, gx = np.gradient(town.height, CELL)
    normal = np.stack([-gx.ravel()[idx], -gy.ravel()[idx], np.ones_like(z)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    shadow = _in_shadow(town, x, y, z + 0.05)
    rgb = town.top_rgb.reshape(-1, 3)[idx] * _texture(town, material, x, y)[..., None]
    rgb = rgb * _lighting(town, normal, shadow)[..., None]
    return rgb, material


def _render_street(town: _Town, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Perspective street photo (float [S, S, 3]) and material map (uint8 [S, S]).

    Column ray-caster: every image column marches one ray over the height map.
    A sample at distance d with height h covers the rows below its top edge
    ``v = f (z_cam - h) / (d cos a)`` (pixels below the horizon); the first
    sample whose running-minimum top edge reaches a row is what that row sees.
    """
    f = (size / 2) / math.tan(STREET_FOV / 2)
    cols = np.arange(size)
    alpha = np.arctan((cols + 0.5 - size / 2) / f)  # [W] ray angle right of forward
    cos_a = np.cos(alpha)
    ray = cos_a[:, None] * town.forward + np.sin(alpha)[:, None] * town.right  # [W, 2]
    # Geometric sample spacing: about one pixel of parallax per step at any distance.
    ratio = 1.0 + 3.0 / size
    dist = 0.4 * ratio ** np.arange(int(math.log(VIEW_DISTANCE / 0.4) / math.log(ratio)) + 1)  # [N]
    n = dist.size
    sx = town.cam[0] + ray[:, 0:1] * dist  # [W, N]
    sy = town.cam[1] + ray[:, 1:2] * dist
    idx = _cell_index(sx, sy)
    h = town.height.ravel()[idx]
    top_edge = f * (CAMERA_HEIGHT - h) / (dist * cos_a[:, None])  # [W, N]
    # An extra sample at infinity: ground meeting the horizon (v = 0) beyond the view distance.
    top_edge = np.concatenate([top_edge, np.zeros((size, 1))], axis=1)  # [W, N+1]
    reach = np.minimum.accumulate(np.clip(top_edge, -4 * size, 4 * size), axis=1)
    # First sample with reach <= v per column, via one searchsorted over column-offset keys.
    big = 10.0 * size
    offset = cols[:, None] * big
    keys = (offset - reach).ravel()  # non-decreasing: reach falls along each column
    v = np.arange(size) + 0.5 - size / 2  # [H] row centres below the horizon (px)
    first = np.searchsorted(keys, (offset - v[None, :]).ravel(), side="left").reshape(size, size)
    hit = (first - cols[:, None] * (n + 1)).T  # [H, W]; n + 1 means the ray saw nothing (sky)

    sky = hit > n
    far = hit == n
    k = np.minimum(hit, n - 1)
    colw = np.broadcast_to(cols, (size, size))
    cell = idx[colw, k]
    material = town.material.ravel()[cell]
    material = np.where(far, GRASS, np.where(sky, SKY, material)).astype(np.uint8)
    hk = np.where(far, 0.0, h[colw, k])
    dk = np.where(far, np.inf, dist[k])
    d_prev = np.where(k > 0, dist[np.maximum(k - 1, 0)], 0.0)
    cos_px = cos_a[None, :]
    vv = np.broadcast_to(v[:, None], (size, size))
    # Top surface (ground, car roofs) if the ray entered the sample's column through its top.
    top = (hk < CAMERA_HEIGHT) & (far | (vv * d_prev * cos_px < f * (CAMERA_HEIGHT - hk)))
    depth = np.where(top, f * (CAMERA_HEIGHT - hk) / np.maximum(vv, 1e-6) / cos_px, dk)
    depth = np.where(sky, VIEW_DISTANCE * 4, np.minimum(depth, VIEW_DISTANCE * 4))
    px = town.cam[0] + depth * ray[None, :, 0]
    py = town.cam[1] + depth * ray[None, :, 1]
    pz = np.where(top, hk, CAMERA_HEIGHT - vv * depth * cos_px / f)

    # Vertical faces: normal opposes the ray, snapped to the grid axis it mostly crosses.
    rx, ry = np.broadcast_to(ray[None, :, 0], (size, size)), np.broadcast_to(ray[None, :, 1], (size, size))
    across_x = np.abs(rx) > np.abs(ry)
    normal = np.zeros((size, size, 3))
    normal[..., 0] = np.where(across_x, -np.sign(rx), 0.0)
    normal[..., 1] = np.where(across_x, 0.0, -np.sign(ry))
    normal[top] = (0.0, 0.0, 1.0)
    lift = np.where(top, 0.05, 0.0)
    shadow = _in_shadow(town, px + normal[..., 0] * 0.3, py + normal[..., 1] * 0.3, pz + lift)
    along = np.where(across_x, py, px)  # position along a facade (m)
    u = np.where(top, px, along)
    w = np.where(top, py, pz)
    albedo = np.where(top[..., None], town.top_rgb.reshape(-1, 3)[cell], town.side_rgb.reshape(-1, 3)[cell])
    rgb = albedo * _texture(town, material, u, w)[..., None] * _lighting(town, normal, shadow)[..., None]
    # Windows on facades: dark glass panes on every storey.
    window = (
        (material == BUILDING)
        & ~top
        & (pz % town.window_floor > 0.9)
        & (pz % town.window_floor < 2.2)
        & (along % town.window_bay > 0.5)
        & (along % town.window_bay < town.window_bay - 0.6)
    )
    rgb = np.where(window[..., None], np.array([0.12, 0.16, 0.22]) * (1.0 + 0.5 * (pz / 30.0))[..., None], rgb)
    fog = 1.0 - np.exp(-depth / town.fog_distance)
    rgb = rgb * (1.0 - fog[..., None]) + town.haze * fog[..., None]

    # Sky: zenith-to-haze gradient with clouds from the smooth noise tile.
    elevation = np.clip(-vv / (size / 2), 0.0, 1.0)  # 0 at the horizon, 1 at the top edge
    heading = math.atan2(town.forward[1], town.forward[0])
    cu = ((heading + alpha[None, :]) * 40.0).astype(np.int64) % TILE
    cv = (np.sqrt(elevation) * 60.0).astype(np.int64) % TILE
    cloud = np.clip(town.tiles[0][cv, cu] - 1.5 + 2.0 * town.cloudiness, 0.0, 1.0) * town.cloudiness
    sky_rgb = town.haze + (town.zenith - town.haze) * np.sqrt(elevation)[..., None]
    sky_rgb = sky_rgb * (1.0 - cloud[..., None]) + 0.95 * cloud[..., None]
    rgb = np.where(sky[..., None], sky_rgb, rgb)
    return rgb, material


def render_views(rng: np.random.Generator, size: int = 256) -> dict[str, Any]:
    """Render one random town as the six panels of a cross-view sample.

    Returns uint8 ``[S, S, 3]`` panels ``A`` aerial photo, ``B`` street photo,
    ``C``/``D`` their colour segmentations, ``E``/``F`` their gray masks (10*k),
    plus ``aerial_label`` / ``street_label`` (uint8 ``[S, S]``, 0-based classes)
    and ``horizon`` (float: street rows with ``row + 0.5 < horizon`` are above it).
    The town depends only on ``rng``'s state, not on ``size``.
    """
    size = _check_size(size)
    town = _make_town(rng)
    aerial_rgb, aerial_mat = _render_aerial(town, size)
    street_rgb, street_mat = _render_street(town, size)
    aerial_label, street_label = MATERIAL_CLASS[aerial_mat], MATERIAL_CLASS[street_mat]
    return {
        "A": _finish(rng, aerial_rgb),
        "B": _finish(rng, street_rgb),
        "C": MATERIAL_SEG_COLOR[aerial_mat],
        "D": MATERIAL_SEG_COLOR[street_mat],
        "E": np.repeat(label_to_gray(aerial_label)[..., None], 3, axis=-1),
        "F": np.repeat(label_to_gray(street_label)[..., None], 3, axis=-1),
        "aerial_label": aerial_label,
        "street_label": street_label,
        "horizon": size / 2,
    }


# --------------------------------------------------------------------------- dataset on disk


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _render_file(job: tuple[str, str, int, int, int]) -> np.ndarray:
    """Worker: render sample (seed, split, index), write its PNG; return class pixel counts [2, C]."""
    folder, split, index, seed, size = job
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    panels = render_views(rng, size)
    # Compression level 1: several times faster than the default and the files stay lossless.
    Image.fromarray(join_panels({k: panels[k] for k in "ABCDEF"})).save(
        Path(folder) / split / f"{index:06d}.png", compress_level=1
    )
    return np.stack(
        [np.bincount(panels[key].ravel(), minlength=CROSSVIEW_NUM_CLASSES) for key in ("aerial_label", "street_label")]
    )


def _manifest(size: int, num_train: int, num_test: int, seed: int) -> dict[str, Any]:
    return {
        "format": "lggan-synth-views",
        "version": SYNTH_VIEWS_VERSION,
        "size": size,
        "num_train": num_train,
        "num_test": num_test,
        "seed": seed,
        "panels": "A aerial | B street | C aerial colour seg | D street colour seg | E aerial mask | F street mask",
        "class_names": list(CROSSVIEW_CLASS_NAMES),
        "palette": CROSSVIEW_PALETTE.tolist(),
    }


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    return int(size)


def generate_synth_views(
    out_dir: str | os.PathLike[str],
    num_train: int = 500,
    num_test: int = 100,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render a synthetic cross-view dataset into ``out_dir/{train,test}/NNNNNN.png``.

    Everything is written into a temporary sibling folder that is renamed to
    ``out_dir`` at the end (see :func:`lggan.data.storage.build_atomically`), so
    ``out_dir`` is either complete or absent. An existing non-empty ``out_dir``
    raises unless ``overwrite``. ``workers=None`` uses
    :func:`lggan.data.storage.default_workers`, ``0``/``1`` renders in this
    process. Returns a summary: root, counts, size, seed, seconds, and per-view
    class pixel fractions.
    """
    num_train, num_test = _check_count("num_train", num_train), _check_count("num_test", num_test)
    if num_train + num_test == 0:
        raise ValueError("num_train + num_test must be >= 1")
    size = _check_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    check_workers(workers)
    start = time.perf_counter()

    def fill(tmp: Path) -> np.ndarray:
        for split in SPLIT_CODES:
            (tmp / split).mkdir()
        jobs = [(str(tmp), split, index, seed, size)
                for split, count in (("train", num_train), ("test", num_test)) for index in range(count)]  # fmt: skip
        counts = np.zeros((2, CROSSVIEW_NUM_CLASSES), np.int64)
        for sample_counts in run_jobs(_render_file, jobs, workers, progress, desc=f"synth-views {size}px", unit="img"):
            counts += sample_counts
        write_json(tmp / MANIFEST_NAME, _manifest(size, num_train, num_test, seed))
        return counts

    complete = partial(_is_complete, size=size, num_train=num_train, num_test=num_test, seed=seed)
    counts = build_atomically(out_dir, fill, overwrite=overwrite, is_complete=complete,
                              ours=lambda root: (root / MANIFEST_NAME).is_file())
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return {
        "root": str(Path(out_dir)),
        "num_train": num_train,
        "num_test": num_test,
        "size": size,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "class_names": list(CROSSVIEW_CLASS_NAMES),
        "class_fraction": {"aerial": fractions[0].tolist(), "street": fractions[1].tolist()},
    }


def default_synth_views_root(size: int = 256, num_train: int = 500, num_test: int = 100, seed: int = 0) -> Path:
    """Cache folder for a synthetic cross-view dataset: ``$LGGAN_CACHE`` or ``~/.cache/lggan``."""
    return cache_dir() / f"synth_views_v{SYNTH_VIEWS_VERSION}_{size}px_n{num_train}-{num_test}_seed{seed}"


def _is_complete(root: Path, size: int, num_train: int, num_test: int, seed: int) -> bool:
    """True if ``root`` holds exactly the dataset these parameters describe."""
    counts = {"train/*.png": num_train, "test/*.png": num_test}
    return is_complete(root, MANIFEST_NAME, _manifest(size, num_train, num_test, seed), counts)


def ensure_synth_views(
    root: str | os.PathLike[str] | None = None,
    size: int = 256,
    num_train: int = 500,
    num_test: int = 100,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Return the root of a complete synthetic cross-view dataset, generating it if missing.

    ``root=None`` uses :func:`default_synth_views_root`. A ``root`` that exists
    but holds something else raises rather than being deleted.
    """
    path = Path(root) if root is not None else default_synth_views_root(size, num_train, num_test, seed)
    complete = partial(_is_complete, size=size, num_train=num_train, num_test=num_test, seed=seed)
    if path.exists() and not complete(path):
        raise FileExistsError(
            f"{path}: exists but is not a complete synthetic cross-view dataset with size={size}, "
            f"num_train={num_train}, num_test={num_test}, seed={seed}; remove it or choose another root"
        )
    generate = partial(generate_synth_views, num_train=num_train, num_test=num_test, size=size, seed=seed,
                       workers=workers, progress=progress)
    return ensure_built(path, complete, generate)
