"""Class-specific output convolutions of the local generator G_l (§3.2, Eq. 1-4, Fig. 3), evaluated sparsely.

The straightforward computation runs every class's 7x7 conv over the whole image on F_i = M_i * f'
(C full-resolution copies of the 64-channel features).  Here the image is cut into T x T tiles and class i is
evaluated only on the tiles its (reflect-padded) mask reaches.  Everywhere else F_i = 0 around the pixel, so the conv
returns its bias and I^l_i = tanh(b_i) exactly: that constant is used without computing anything.  Because
conv(concat_i I^l_i) = sum_i conv_i(I^l_i) + b (Eq. 4), the fusion conv splits the same way into a constant image
(one cheap 1-channel conv) and per-tile contributions that are overlap-added with F.fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClassImages:
    """The class images I^l_i of Eq. 1 in sparse form: a constant tanh(b_i) per class plus the tiles it reaches.

    `dense()` builds the full [B, C, 3, H, W] tensor (only for visualisation / checks); `sum()` is Eq. 3;
    `lggan.losses.local_l1_loss` evaluates Eq. 2 directly on this form.  Tile (b, i, ty, tx) covers output pixels
    rows ty*T .. ty*T+T-1, cols tx*T .. tx*T+T-1 (clipped to the image; values outside the image are zero in `delta`).
    """

    const: torch.Tensor  # [C, 3]: tanh(b_i), the value of I^l_i wherever class i does not reach
    delta: torch.Tensor  # [N, 3, T, T]: I^l_i - tanh(b_i) on the N computed (sample, class, tile) entries
    batch_idx: torch.Tensor  # [N] long
    class_idx: torch.Tensor  # [N] long
    tile_y: torch.Tensor  # [N] long
    tile_x: torch.Tensor  # [N] long
    height: int
    width: int
    batch_size: int
    tile: int

    @property
    def num_classes(self) -> int:
        return self.const.shape[0]

    @property
    def grid(self) -> tuple[int, int]:
        return math.ceil(self.height / self.tile), math.ceil(self.width / self.tile)

    @property
    def tile_index(self) -> torch.Tensor:
        """[N] flat index of each computed tile in the [B, ny, nx] tile grid."""
        ny, nx = self.grid
        return (self.batch_idx * ny + self.tile_y) * nx + self.tile_x

    def tiles_to_image(self, tiles: torch.Tensor) -> torch.Tensor:
        """Sums per-pair tiles [N, K, T, T] into images [B, K, H, W] (pairs on the same tile add up)."""
        ny, nx = self.grid
        T, B = self.tile, self.batch_size
        acc = tiles.new_zeros(B * ny * nx, tiles.shape[1], T, T).index_add(0, self.tile_index, tiles)
        img = acc.view(B, ny, nx, -1, T, T).permute(0, 3, 1, 4, 2, 5).reshape(B, -1, ny * T, nx * T)
        return img[:, :, : self.height, : self.width]

    def sum(self) -> torch.Tensor:
        """Eq. 3: I^L = sum_i I^l_i, [B, 3, H, W] (before any fusion)."""
        base = self.const.sum(0).view(1, -1, 1, 1)
        return base + self.tiles_to_image(self.delta)

    def dense(self) -> torch.Tensor:
        """All class images I^l_i as one [B, C, 3, H, W] tensor."""
        ny, nx = self.grid
        T, B, C, K = self.tile, self.batch_size, self.num_classes, self.const.shape[1]
        full = self.const.view(1, C, 1, 1, K, 1, 1).expand(B, C, ny, nx, K, T, T).clone()
        idx = (self.batch_idx, self.class_idx, self.tile_y, self.tile_x)
        full = full.index_put(idx, self.const[self.class_idx].view(-1, K, 1, 1) + self.delta)
        full = full.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, C, K, ny * T, nx * T)
        return full[..., : self.height, : self.width]


def group_masks(M: torch.Tensor, local_groups: int | None) -> torch.Tensor:
    """The masks M_g of the local branch's groups (§3.2; ADE20K release): [B, C, H, W] class masks -> [B, G, H, W].

    local_groups None: one group per class channel, M itself (the same tensor, so nothing changes).  N: channels
    0..N-2 are groups 0..N-2 one each, and channels N-1..C-1 are summed into group N-1 (the ADE20K release: 52 groups
    over 151 channels, group 51 = channels 51..150).  For one-hot maps the sum is the binary union of those classes.
    Every place where a class index meets the local branch (class convs, Eq. 4's fusion, the classifier, the local
    L1) uses these masks, so they always agree.
    """
    if local_groups is None:
        return M
    if M.dim() != 4:
        raise ValueError(f"group_masks: M must be [B, C, H, W], got {tuple(M.shape)}")
    C = M.shape[1]
    if not 2 <= local_groups <= C:
        raise ValueError(f"local_groups={local_groups}: must be between 2 and the {C} class channels (or None)")
    union = M[:, local_groups - 1 :].sum(1, keepdim=True)  # [B, 1, H, W]: the last group, all remaining classes
    return torch.cat([M[:, : local_groups - 1], union], 1)  # [B, G, H, W]


CORRELATION_CHUNK = 256  # windows per batched matmul: bounds the [N, Cout*k*k, h*w] temporary (~75 MiB at ngf 64)


def batched_correlation(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        chunk: int = CORRELATION_CHUNK) -> torch.Tensor:
    """Valid cross-correlation of x[n] with its own weight[n] (what F.conv2d computes), for all n at once.

    x [N, Cin, h, w], weight [N, Cout, Cin, k, k], bias [N, Cout] or None -> [N, Cout, h-k+1, w-k+1].
    Written as one batched matmul P = W @ x (every input pixel's contribution to every kernel tap) followed by F.fold,
    which adds each contribution where it lands.  With only 3 output channels this runs several times faster than a
    grouped convolution on CPU, forward and backward.  P (and its gradient) is the largest temporary of the local
    branch, so the windows go through in chunks of `chunk`; each chunk is independent, so the result is the same.
    """
    N, cin, h, w = x.shape
    cout, k = weight.shape[1], weight.shape[-1]
    # Taps flipped: fold puts channel (c, k') of input pixel q at q + k', which must receive tap k-1-k' of q.
    W = weight.flip(-1, -2).permute(0, 1, 3, 4, 2).reshape(N, cout * k * k, cin)  # [N, Cout*k*k, Cin]
    x = x.reshape(N, cin, h * w)
    parts = []
    for start in range(0, N, max(1, chunk)):
        P = torch.bmm(W[start : start + chunk], x[start : start + chunk])  # [n, Cout*k*k, h*w]
        parts.append(F.fold(P, output_size=(h + k - 1, w + k - 1), kernel_size=k))  # full correlation
    full = parts[0] if len(parts) == 1 else torch.cat(parts)  # [N, Cout, h+k-1, w+k-1]
    out = full[:, :, k - 1 : h, k - 1 : w]
    return out if bias is None else out + bias.view(N, cout, 1, 1)


# Up to this many input channels the class convs run as one ordinary conv per present class over its windows; above,
# as one batched matmul + fold over all windows (batched_correlation). Measured on one CPU thread (Intel Xeon, 18
# classes, 16x16 tiles of 22x22 windows, forward + backward): 16 channels (the synth preset) 114 vs 264 ms,
# 32 channels 272 vs 300 ms, 64 channels (official widths) 1,405 vs 840 ms.
PER_CLASS_CONV_MAX_CHANNELS = 32


def per_class_correlation(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          class_idx: torch.Tensor) -> torch.Tensor:
    """What batched_correlation(x, weight[class_idx], bias[class_idx]) computes, as one F.conv2d per class present:
    x [N, Cin, h, w], weight [C, Cout, Cin, k, k], bias [C, Cout], class_idx [N] -> [N, Cout, h-k+1, w-k+1]."""
    order = torch.argsort(class_idx, stable=True)
    classes, counts = torch.unique_consecutive(class_idx[order], return_counts=True)
    outs = [F.conv2d(xs, weight[c], bias[c])
            for c, xs in zip(classes.tolist(), x[order].split(counts.tolist()))]
    return torch.cat(outs)[torch.argsort(order)]  # back in the windows' order


class ClassSpecificConv(nn.Module):
    """Per-class conv + tanh of G_l (§3.2, Eq. 1): I^l_i = tanh(conv_i(reflect_pad(M_i * f'))), computed sparsely."""

    def __init__(self, num_classes: int, in_channels: int, out_channels: int = 3, kernel_size: int = 7, tile_size: int = 16):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if tile_size < 1:
            raise ValueError(f"tile_size must be >= 1, got {tile_size}")
        self.num_classes, self.in_channels, self.out_channels = num_classes, in_channels, out_channels
        self.kernel_size, self.tile_size = kernel_size, tile_size
        # One stacked parameter for all classes: weight[i] is the conv of class i (official deconv5_{i}).
        self.weight = nn.Parameter(torch.empty(num_classes, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(num_classes, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same distribution as nn.Conv2d's default, drawn independently per class.
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, tile_size={self.tile_size}")

    def forward(self, f: torch.Tensor, M: torch.Tensor) -> ClassImages:
        if f.dim() != 4 or f.shape[1] != self.in_channels:
            raise ValueError(f"f' must be [B, {self.in_channels}, H, W], got {tuple(f.shape)}")
        if M.dim() != 4 or M.shape[1] != self.num_classes or M.shape[0] != f.shape[0] or M.shape[2:] != f.shape[2:]:
            raise ValueError(f"masks M must be [B, {self.num_classes}, H, W] matching f' {tuple(f.shape)}, got {tuple(M.shape)}")
        B, _, H, W = f.shape
        r, T = self.kernel_size // 2, self.tile_size
        if H <= r or W <= r:
            raise ValueError(f"image {H}x{W} too small for reflect padding {r}")
        ny, nx = math.ceil(H / T), math.ceil(W / T)
        win = T + 2 * r
        M = M.to(f.dtype)

        # Reflect padding commutes with the per-pixel product, so pad(M_i * f') = pad(M_i) * pad(f'); pad once for all
        # classes, then zero-extend to a whole number of tiles (outputs there are discarded).
        f_pad = F.pad(F.pad(f, (r, r, r, r), mode="reflect"), (0, nx * T - W, 0, ny * T - H))  # [B, n, ny*T+2r, nx*T+2r]
        M_pad = F.pad(F.pad(M, (r, r, r, r), mode="reflect"), (0, nx * T - W, 0, ny * T - H))  # [B, C, ...]

        # Which (sample, class, tile) windows (tile + kernel radius) contain some mask support.  Reflection moves a
        # pixel by at most r, so this is exactly the set of tiles where conv_i sees a non-zero input.
        reach = F.max_pool2d((M_pad != 0).to(f.dtype), kernel_size=win, stride=T) > 0  # [B, C, ny, nx]
        b, i, ty, tx = reach.nonzero(as_tuple=True)

        const = torch.tanh(self.bias)  # [C, 3]
        in_image = torch.zeros(ny * T, nx * T, dtype=f.dtype, device=f.device)
        in_image[:H, :W] = 1
        in_image = in_image.view(ny, T, nx, T).permute(0, 2, 1, 3)[ty, tx]  # [N, T, T]

        if b.numel() == 0:
            delta = f.new_zeros(0, self.out_channels, T, T)
        else:
            # Tiles as strided views (no copy), then gather only the N reached windows: [N, n, win, win].
            f_win = f_pad.unfold(2, win, T).unfold(3, win, T).permute(0, 2, 3, 1, 4, 5)[b, ty, tx]
            M_win = M_pad.unfold(2, win, T).unfold(3, win, T)[b, i, ty, tx]  # [N, win, win]
            F_i = f_win * M_win.unsqueeze(1)  # Eq. 1 on the window
            if self.in_channels <= PER_CLASS_CONV_MAX_CHANNELS:
                out = per_class_correlation(F_i, self.weight, self.bias, i)  # conv_i on each window, [N, 3, T, T]
            else:
                out = batched_correlation(F_i, self.weight[i], self.bias[i])
            delta = (torch.tanh(out) - const[i].view(-1, self.out_channels, 1, 1)) * in_image.unsqueeze(1)
        return ClassImages(const=const, delta=delta, batch_idx=b, class_idx=i, tile_y=ty, tile_x=tx,
                           height=H, width=W, batch_size=B, tile=T)

    def forward_dense(self, f: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """The same I^l_i computed densely, for export (torch.jit.trace / ONNX): [B, C*3, H, W] = concat_i I^l_i
        (class-major, as Eq. 4's fusion conv reads it).

        Every class's conv runs over the whole image, one class at a time (a traced graph of C convolutions, with no
        data-dependent shapes); the sparse `forward` gives the same values and is what training and `lggan generate`
        use.
        """
        r = self.kernel_size // 2
        M = M.to(f.dtype)
        images = []
        for i in range(self.num_classes):
            F_i = F.pad(f * M[:, i : i + 1], (r, r, r, r), mode="reflect")  # Eq. 1, reflect-padded like the sparse path
            images.append(torch.tanh(F.conv2d(F_i, self.weight[i], self.bias[i])))
        return torch.cat(images, 1)


def combine_class_images(I: ClassImages, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Eq. 4 before its tanh: Conv(concat_i I^l_i) with zero 'same' padding, weight [3, 3C, k, k] -> [B, 3, H, W].

    Conv(concat_i I^l_i) = Conv(concat_i tanh(b_i)) + sum over computed tiles of conv_i(delta tile); the first term is a
    1-channel conv of an all-ones image, the second a full convolution of every tile (delta is 0 outside its tile)
    whose (T+k-1)^2 results are overlap-added with F.fold.
    """
    C, T, B, K = I.num_classes, I.tile, I.batch_size, I.const.shape[1]
    cout, k = weight.shape[0], weight.shape[-1]
    if weight.dim() != 4 or weight.shape[1] != K * C or k % 2 != 1 or weight.shape[2] != k:
        raise ValueError(f"combine weight must be [out, {K * C}, k, k] with odd k, got {tuple(weight.shape)}")
    H, W, p = I.height, I.width, k // 2
    ny, nx = I.grid
    # Constant part: channel c of the concat is the constant tanh(b)[c]; zero padding makes the borders differ.
    k_const = torch.einsum("ocyx,c->oyx", weight, I.const.reshape(-1)).unsqueeze(1)  # [out, 1, k, k]
    ones = torch.ones(1, 1, H, W, dtype=weight.dtype, device=weight.device)
    out = F.conv2d(ones, k_const, bias, padding=p)  # [1, out, H, W]
    if I.delta.shape[0] == 0:
        return out.expand(B, -1, -1, -1)
    w_class = weight.view(cout, C, K, k, k).transpose(0, 1)  # [C, out, K, k, k]: class i's slice of the fusion conv
    full = batched_correlation(F.pad(I.delta, (k - 1,) * 4), w_class[I.class_idx], None)  # [N, out, T+k-1, T+k-1]
    acc = full.new_zeros(B * ny * nx, cout, T + k - 1, T + k - 1).index_add(0, I.tile_index, full)
    cols = acc.view(B, ny * nx, cout * (T + k - 1) ** 2).transpose(1, 2)
    canvas = F.fold(cols, output_size=(ny * T + k - 1, nx * T + k - 1), kernel_size=T + k - 1, stride=T)
    return out + canvas[:, :, p : H + p, p : W + p]
