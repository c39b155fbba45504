"""Region-constant evaluation of the convolutions that read only the semantic map S (SPADE's gamma/beta, E's conv1).

S [B, Cs, H, W] (one-hot classes, instance edges, don't-care channels) takes a handful of distinct values per image.
`SemanticLayout` stores it as region keys [B, H, W] (compact ids of those values) plus the value table V [K + 1, Cs]
whose last row is all zeros (a conv's zero padding). For a conv on S with weight W [O, Cs, k, k]:

* where an output's k x k window holds one key k (inside the image, for zero padding) the output is the per-key
  constant b + (sum_taps W) V[k]: a table lookup, nothing computed per pixel;
* elsewhere it is sum_t W_t V[key(p + t)] + b, a sum of k^2 rows of the tap tables W_t V (an embedding bag),
  i.e. a gather of weight columns instead of a GEMM over all Cs input channels.

SPADE's gamma/beta (mlp_gamma/mlp_beta(ReLU(mlp_shared(S)))) read S through two stacked 3x3 convs, so they are the
per-key constant wherever the 5x5 window is uniform; only at the remaining pixels (region boundaries, instance edges,
the 2-pixel image border) are the 3x3 activations gathered and multiplied by the gamma/beta weights (one GEMM, the
activations recomputed in the backward pass instead of stored). Every path is the same function as the dense convs,
forward and backward (tests/test_region_constant.py checks it in float64); the choice is only about speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# Above this many distinct pixel values S is not treated as a label map (the tables would outgrow the image).
MAX_KEYS = 1024
# A SPADE at a resolution with more than this many distinct mixed 5x5 windows per pixel runs its dense convs instead
# (the boundary GEMM would cost as much as the dense conv plus the gathers; measured with benchmarks/region_spade.py).
MAX_BOUNDARY_FRACTION = 0.6
# Below this many output pixels per image the dense convs are cheaper than the bookkeeping.
MIN_PIXELS = 256
# A single conv on S (E's conv1, D's first conv) runs per region only where at most this fraction of its windows is a
# distinct mixed pattern, and not under autocast (a bf16 dense conv is ~4x faster than fp32 on AMX; measured, one
# thread, Intel Xeon: E's conv1 at 512x256 fraction 0.10: 156 ms per region vs 576 fp32 / 123 bf16 dense; at 128x64
# batch 4, fraction 0.49: 86 vs 32 / 9 ms; D's first conv at 512x256, 0.05: 42 vs 54 / 27 ms).
MAX_CONV_FRACTION = 0.2

_HASH_SEED = 0x5EED


def _hash_weights(channels: int, device: torch.device) -> torch.Tensor:
    """[channels] float64 integers in [1, 2^40): a pixel's code is S(p) . w (exact for 0/1 maps; any collision or
    rounding is caught by the exact check in `SemanticLayout.from_semantic`)."""
    g = torch.Generator().manual_seed(_HASH_SEED)
    w = torch.randint(1, 2**40, (channels,), generator=g, dtype=torch.int64)
    return w.to(device=device, dtype=torch.float64)


_ROW_HASH_SEED = 0x7A11


def _row_weights(length: int, device: torch.device) -> torch.Tensor:
    """[length] random odd int64 multipliers of the row hash."""
    g = torch.Generator().manual_seed(_ROW_HASH_SEED)
    return (torch.randint(1, 2**62, (length,), generator=g, dtype=torch.int64) | 1).to(device)


def unique_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.unique(rows, dim=0, return_inverse=True) for a [N, L] long tensor, via a 64-bit hash of each row.

    torch's unique over rows compares rows one by one in Python-visible ops (about 2 x N tiny ops on CPU); here each
    row becomes one int64 (a random linear form, wrapping), those are made unique by sorting, and every row is then
    checked against its representative, so a hash collision can only make it fall back to torch.unique.
    """
    N, L = rows.shape
    if N == 0:
        return rows, rows.new_zeros(0)
    code = (rows * _row_weights(L, rows.device)).sum(1)  # [N] int64, wrapping
    codes, inverse = torch.unique(code, return_inverse=True)
    first = torch.full((codes.numel(),), N, dtype=torch.long, device=rows.device).scatter_reduce(
        0, inverse, torch.arange(N, device=rows.device), "amin")
    patterns = rows[first]
    if not torch.equal(patterns[inverse], rows):  # a collision: distinct rows with one code
        return torch.unique(rows, dim=0, return_inverse=True)
    return patterns, inverse


@dataclass
class Windows:
    """The k x k windows (stride s, padding p) of a key map: where they hold one key, and the distinct others.

    Windows that hold several keys (or padding) are deduplicated: `patterns` lists each distinct one once, since
    a conv on S gives the same output for the same window of keys. Along a straight region edge every pixel has the
    same pattern, so there are far fewer patterns than such pixels (Cityscapes-like maps at 512x256: ~1 in 4).
    """

    keys: torch.Tensor  # [B, oh, ow] long: the key of each uniform window (meaningless elsewhere)
    patterns: torch.Tensor  # [U, k*k] long: the distinct mixed windows' keys, row-major; K = zero padding
    table_index: torch.Tensor  # [B, oh, ow] long: key k for uniform windows, K + u for a window of pattern u
    _derived: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Distinct mixed windows per output: the share of the dense work that is left to compute."""
        return self.patterns.shape[0] / max(1, self.keys.numel())


@dataclass
class LayoutAt:
    """A SemanticLayout resized (nearest, as F.interpolate resizes S) to one resolution."""

    keys: torch.Tensor  # [B, h, w] long, 0..K-1
    vectors: torch.Tensor  # [K + 1, Cs]: S's value for each key; row K = zeros
    _windows: dict = field(default_factory=dict)

    @property
    def num_keys(self) -> int:
        return self.vectors.shape[0] - 1

    def windows(self, k: int, stride: int, padding: int, padding_mode: str) -> Windows:
        """The windows of a conv with kernel k, stride, padding (zeros: the pad key K; reflect: mirrored keys)."""
        spec = (k, stride, padding, padding_mode)
        if spec not in self._windows:
            self._windows[spec] = _windows(self.keys, self.num_keys, *spec)
        return self._windows[spec]


def _windows(keys: torch.Tensor, K: int, k: int, stride: int, padding: int, padding_mode: str) -> Windows:
    B, h, w = keys.shape
    if padding_mode == "zeros":
        kp = F.pad(keys, (padding,) * 4, value=K)  # [B, h+2p, w+2p]; K: a key no pixel has
    elif padding_mode == "reflect":
        kp = F.pad(keys.to(torch.float32).unsqueeze(1), (padding,) * 4, mode="reflect").squeeze(1).long()
    else:
        raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {padding_mode!r}")
    hp, wp = kp.shape[-2:]
    kf = kp.to(torch.float32).unsqueeze(1)  # ids < 2^24: exact in float32
    hi = F.max_pool2d(kf, k, stride)
    lo = -F.max_pool2d(-kf, k, stride)
    oh, ow = hi.shape[-2:]
    mixed = (hi != lo).view(-1).nonzero().squeeze(1)  # [N] flat indices into B*oh*ow
    # The key of every window's top-left pixel: the window's key wherever the window is uniform.
    corner = kp[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
    b, rem = mixed // (oh * ow), mixed % (oh * ow)
    top_left = (b * hp + (rem // ow) * stride) * wp + (rem % ow) * stride  # [N] flat index into kp
    offsets = (torch.arange(k, device=keys.device).view(-1, 1) * wp + torch.arange(k, device=keys.device)).view(-1)
    window_keys = kp.reshape(-1)[top_left.view(-1, 1) + offsets]  # [N, k*k]
    patterns, pattern_of = unique_rows(window_keys)  # [U, k*k], [N]
    table_index = corner.reshape(-1).clone()
    table_index[mixed] = K + pattern_of
    return Windows(corner.contiguous(), patterns, table_index.view(B, oh, ow))


@dataclass
class SemanticLayout:
    """S [B, Cs, H, W] as region keys: keys [B, H, W] (0..K-1) and vectors [K + 1, Cs] (row K = zeros)."""

    keys: torch.Tensor
    vectors: torch.Tensor
    _at: dict = field(default_factory=dict)

    @classmethod
    def from_semantic(cls, S: torch.Tensor, max_keys: int = MAX_KEYS) -> SemanticLayout | None:
        """The layout of S, or None where S is not a label map (more than max_keys distinct pixel values, or more
        than a quarter of its pixels) or needs a gradient (the region form gives none to S itself: the dense convs are used then)."""
        if S.dim() != 4 or not S.is_floating_point() or S.requires_grad or S.numel() == 0:
            return None
        B, Cs, H, W = S.shape
        code = torch.einsum("bchw,c->bhw", S.to(torch.float64), _hash_weights(Cs, S.device))
        uniq, inverse = torch.unique(code.reshape(-1), return_inverse=True)
        K, P = uniq.numel(), inverse.numel()
        if K > max(16, min(max_keys, P // 4)):  # not a label map: most pixels have values of their own
            return None
        first = torch.full((K,), P, dtype=torch.long, device=S.device).scatter_reduce(
            0, inverse, torch.arange(P, device=S.device), "amin")
        b, rem = first // (H * W), first % (H * W)
        vectors = S[b, :, rem // W, rem % W]  # [K, Cs]: the value at the first pixel of each key
        keys = inverse.view(B, H, W)
        # Exact check: every pixel equals its key's vector (rules out hash collisions and rounding).
        if not bool((vectors[keys] == S.permute(0, 2, 3, 1)).all()):
            return None
        vectors = torch.cat([vectors, vectors.new_zeros(1, Cs)])
        return cls(keys, vectors, {(H, W): LayoutAt(keys, vectors)})

    @property
    def num_keys(self) -> int:
        return self.vectors.shape[0] - 1

    def at(self, size: tuple[int, int]) -> LayoutAt:
        """The layout at (h, w), resized nearest exactly as F.interpolate(S, size, mode="nearest") resizes S."""
        size = (int(size[0]), int(size[1]))
        if size not in self._at:
            keys = F.interpolate(self.keys.unsqueeze(1).to(torch.float32), size=size, mode="nearest")
            self._at[size] = LayoutAt(keys.squeeze(1).long(), self.vectors)
        return self._at[size]


def tap_tables(weight: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """[k*k, K + 1, O]: row (t, key) = W[:, :, t] @ V[key], what tap t adds for an input pixel of that key."""
    O, _, kh, kw = weight.shape
    return torch.einsum("ocyx,kc->yxko", weight, vectors.to(weight.dtype)).reshape(kh * kw, -1, O)


def fill(table: torch.Tensor, index: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """[B, O, h, w] with out[b, :, y, x] = table[index[b, y, x]]: NCHW-strided, or channels-last strided."""
    B, h, w = index.shape
    O = table.shape[1]
    if channels_last:
        return F.embedding(index, table).permute(0, 3, 1, 2)  # [B, h, w, O] read as [B, O, h, w]
    out = table.t().contiguous().index_select(1, index.reshape(-1))  # [O, B*h*w]
    return out.view(O, B, h, w).transpose(0, 1)


def layout_conv(L: LayoutAt, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, padding: int = 0,
                padding_mode: str = "zeros", channels_last: bool = False) -> torch.Tensor:
    """F.conv2d(pad(S), weight, bias, stride) for the S that L describes, computed per region: [B, O, oh, ow]."""
    k = weight.shape[-1]
    if weight.shape[-2] != k:
        raise ValueError(f"layout_conv: square kernels only, got {tuple(weight.shape)}")
    win = L.windows(k, stride, padding, padding_mode)
    K = L.num_keys
    taps = tap_tables(weight, L.vectors)  # [k*k, K+1, O]
    if bias is not None:
        taps = taps + bias.view(1, 1, -1) * _one_at(k * k, k * k // 2, taps)  # the bias rides on the centre tap
    const = taps.sum(0)[:K]  # [K, O]: a window of one key
    rows = (torch.arange(k * k, device=L.keys.device) * (K + 1)).view(1, -1)
    mixed = F.embedding_bag(win.patterns + rows, taps.reshape(-1, taps.shape[-1]), mode="sum")  # [U, O]
    return fill(torch.cat([const, mixed.to(const.dtype)]), win.table_index, channels_last)


def _one_at(n: int, i: int, like: torch.Tensor) -> torch.Tensor:
    """[n, 1, 1] with 1 at i, 0 elsewhere (dtype and device of `like`)."""
    e = like.new_zeros(n, 1, 1)
    e[i] = 1
    return e


def _activation_rows(w5: Windows, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For SPADE's two stacked 3x3 convs: (act_index [U5, 9], patterns3 [U3, 9]).

    Activation rows are: the K keys (a pixel whose 3x3 window is uniform), the U3 distinct mixed 3x3 windows that
    occur around the 5x5 patterns, and one zero row (index K + U3) for positions outside the image, the gamma/beta
    conv's zero padding. act_index[u, j] is the row of neighbour j (row-major 3x3) of 5x5 pattern u.
    """
    if "spade" not in w5._derived:
        dev = w5.patterns.device
        r = torch.arange(3, device=dev)
        pos_y, pos_x = r.repeat_interleave(3), r.repeat(3)  # neighbour j = (i, jj) and tap t = (a, c), row-major
        # index into the 5x5 pattern of tap (a, c) of neighbour (i, jj): (i + a) * 5 + (jj + c)
        idx = (pos_y.view(-1, 1) + pos_y.view(1, -1)) * 5 + pos_x.view(-1, 1) + pos_x.view(1, -1)
        sub = w5.patterns[:, idx].reshape(-1, 9)  # [U5*9, 9]: each neighbour's 3x3 window of keys
        centre = sub[:, 4]
        uniform = (sub == centre.view(-1, 1)).all(1)
        outside = centre == K  # the neighbour itself lies in the padding
        mixed = ~uniform & ~outside
        patterns3, of = unique_rows(sub[mixed])
        act_index = centre.clone()
        act_index[mixed] = K + of
        act_index[outside] = K + patterns3.shape[0]
        w5._derived["spade"] = (act_index.view(-1, 9), patterns3)
    return w5._derived["spade"]


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    if torch.is_autocast_enabled(device_type):
        return True, torch.get_autocast_dtype(device_type)
    return False, None


class _GatherGEMM(torch.autograd.Function):
    """out = act[index].view(N, 9*hidden) @ weight + bias: a 3x3 conv evaluated at N pixels from a table of
    activations (the im2col rows are gathered, not stored: the backward pass gathers them again)."""

    @staticmethod
    def forward(ctx, act: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        ctx.device_type = act.device.type
        ctx.autocast = _autocast_state(ctx.device_type)
        ctx.save_for_backward(act, index, weight)
        cols = act.index_select(0, index.reshape(-1)).view(index.shape[0], -1)  # [N, 9*hidden]
        return torch.addmm(bias, cols, weight)  # [N, O] (autocast applies, as to the dense conv)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        act, index, weight = ctx.saved_tensors
        enabled, dtype = ctx.autocast
        g_act = g_weight = g_bias = None
        with torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled):
            if ctx.needs_input_grad[2]:
                cols = act.index_select(0, index.reshape(-1)).view(index.shape[0], -1)
                g_weight = (cols.t() @ grad).to(weight.dtype)  # [9*hidden, O]
            if ctx.needs_input_grad[0]:
                g_cols = (grad @ weight.t()).to(act.dtype)  # [N, 9*hidden]
                g_act = act.new_zeros(act.shape).index_add_(0, index.reshape(-1), g_cols.view(-1, act.shape[1]))
        if ctx.needs_input_grad[3]:
            g_bias = grad.sum(0).to(weight.dtype)
        return g_act, None, g_weight, g_bias


def gemm_weight(weights: list[torch.Tensor]) -> torch.Tensor:
    """3x3 conv weights [O_i, hidden, 3, 3] side by side as one GEMM matrix [(tap, hidden), sum O_i], in one copy."""
    return torch.cat([w.permute(2, 3, 1, 0) for w in weights], 3).reshape(-1, sum(w.shape[0] for w in weights))


def spade_tables(L: LayoutAt, shared_weight: torch.Tensor, shared_bias: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv3x3(ReLU(conv3x3(S, shared) + shared_bias), W) + bias for the S that L describes, as (table [R, O],
    index [B, h, w]): the output at pixel p is table[index[p]] (`fill`; `spade_modulation` is the image itself).
    weight: W as gemm_weight([W]), [9 * hidden, O].

    SPADE's mlp_shared -> ReLU -> [mlp_gamma | mlp_beta], zero padding 1 for both convs. The activations
    ReLU(mlp_shared(S)) are a table (one row per key, one per distinct mixed 3x3 window, a zero row); gamma/beta
    are a second one: per key where the 5x5 window is uniform, and for each distinct mixed 5x5 window the 3x3 conv
    over its 9 neighbours' activation rows (one GEMM). The fill reads each pixel's row.
    """
    w5 = L.windows(5, 1, 2, "zeros")
    K = L.num_keys
    act_index, patterns3 = _activation_rows(w5, K)
    with _tables_precision(L.keys.device.type):
        return _spade_tables(L, w5, act_index, patterns3, shared_weight, shared_bias, weight, bias)


def _tables_precision(device_type: str):
    """Autocast off: the tables are computed in the weights' precision (float32). Each row stands for many pixels (all
    of a key's region, or every pixel of a pattern), so its rounding error is shared by all of them instead of
    averaging out as the dense conv's per-pixel errors do; in bf16 that made the gradients ~30 % less accurate than the
    dense bf16 path's (tests/test_region_constant.py). The tables are small: float32 costs little."""
    return torch.autocast(device_type, enabled=False)


def _spade_tables(L, w5, act_index, patterns3, shared_weight, shared_bias, weight, bias):
    K, hidden = L.num_keys, shared_weight.shape[0]
    taps = tap_tables(shared_weight, L.vectors)  # [9, K+1, hidden]; row K (padding) = 0
    taps = taps + shared_bias.view(1, 1, -1) * _one_at(9, 4, taps)  # centre tap carries the bias
    rows = (torch.arange(9, device=L.keys.device) * (K + 1)).view(1, -1)
    mixed_pre = F.embedding_bag(patterns3 + rows, taps.reshape(-1, hidden), mode="sum")  # [U3, hidden]
    act = F.relu(torch.cat([taps.sum(0)[:K], mixed_pre, taps.new_zeros(1, hidden)]))  # [K + U3 + 1, hidden]
    const = torch.addmm(bias, act[:K], weight.view(9, hidden, -1).sum(0))  # [K, O]: inside a region of one key
    mixed = _GatherGEMM.apply(act, act_index, weight, bias)  # [U5, O]
    return torch.cat([const, mixed]), w5.table_index


def spade_modulation(L: LayoutAt, shared_weight: torch.Tensor, shared_bias: torch.Tensor,
                     weight: torch.Tensor, bias: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """spade_tables filled in: [B, O, h, w] (NCHW- or channels-last-strided); weight in conv form [O, hidden, 3, 3]."""
    return fill(*spade_tables(L, shared_weight, shared_bias, gemm_weight([weight]), bias), channels_last)


class RegionModulate(torch.autograd.Function):
    """SPADE's x_hat * (1 + gamma) + beta with (1 + gamma, beta) = table[index] per pixel (spade_tables).

    The filled [B, 2C, h, w] modulation is not kept for the backward pass (the dense path keeps gamma and beta):
    the backward fills 1 + gamma again and sums the gradients of each table row over its pixels.
    x_hat [B, C, h, w] (BatchNorm's output), table [R, 2C], index [B, h, w] -> [B, C, h, w].
    """

    @staticmethod
    def forward(ctx, x_hat: torch.Tensor, table: torch.Tensor, index: torch.Tensor, channels_last: bool):
        C = x_hat.shape[1]
        mod = fill(table, index, channels_last)
        ctx.save_for_backward(x_hat, table, index)
        ctx.channels_last = channels_last
        return torch.addcmul(mod[:, C:], x_hat, mod[:, :C])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_hat, table, index = ctx.saved_tensors
        C, R = x_hat.shape[1], table.shape[0]
        g_x = g_table = None
        if ctx.needs_input_grad[0]:
            g_x = (grad * fill(table[:, :C], index, ctx.channels_last)).to(x_hat.dtype)
        if ctx.needs_input_grad[1]:
            # Each table row sums the gradients of many pixels (all of a key's region): accumulate in float32 even
            # when autocast hands bf16 gradients (a bf16 running sum would lose the small terms).
            rows = index.reshape(-1)
            acc = torch.promote_types(grad.dtype, torch.float32)
            per_pixel = torch.cat([grad * x_hat, grad], 1).to(acc)  # [B, 2C, h, w]
            if ctx.channels_last:  # [B, h, w, 2C] pixel rows summed into table rows
                per_pixel = per_pixel.permute(0, 2, 3, 1).reshape(-1, 2 * C)
                g_table = per_pixel.new_zeros(R, 2 * C).index_add_(0, rows, per_pixel)
            else:  # per channel: [2C, B*h*w] summed into [2C, R]
                per_pixel = per_pixel.transpose(0, 1).reshape(2 * C, -1)
                g_table = per_pixel.new_zeros(2 * C, R).index_add_(1, rows, per_pixel).t()
            g_table = g_table.to(table.dtype)
        return g_x, g_table, None, None





def conv_worth_regions(L: LayoutAt, k: int, stride: int, padding: int, padding_mode: str, device_type: str) -> bool:
    """Whether one conv on S (kernel k) is cheaper per region than dense here (see MAX_CONV_FRACTION)."""
    if torch.is_autocast_enabled(device_type):
        return False
    return L.windows(k, stride, padding, padding_mode).fraction <= MAX_CONV_FRACTION


def worth_regions(L: LayoutAt) -> bool:
    """Whether SPADE at this resolution is cheaper per region than dense (enough pixels, few boundary pixels)."""
    h, w = L.keys.shape[-2:]
    return h * w >= MIN_PIXELS and L.windows(5, 1, 2, "zeros").fraction <= MAX_BOUNDARY_FRACTION
