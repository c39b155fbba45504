"""What every conversion shares: the report, unwrapping a checkpoint, and checking the result against the model.

Spectral-norm layers keep torch's weight_orig / weight_u / weight_v names on both sides, and the stored u, v are
kept as they are: in eval mode torch divides by sigma = u^T W v without a power iteration, as the release did.
Checkpoints saved without weight_v are completed (see `_complete_spectral_norm`), and one holding a plain `weight` for
such a layer gets weight_orig = weight and fresh singular vectors (each reported in the notes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

TASK_MODELS = {"semantic": "LGGANGenerator", "crossview": "CrossViewGenerator"}
DISCRIMINATOR_MODEL = "MultiscaleDiscriminator"
_WRAPPER_KEYS = ("state_dict", "model", "netG", "generator", "G", "netD", "discriminator", "D", "params", "net")


@dataclass
class ConversionReport:
    """What a conversion found: the task, the inferred model arguments, ignored keys and remarks."""

    arguments: dict[str, Any]
    task: str = "semantic"  # semantic (LGGANGenerator) | crossview (CrossViewGenerator)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    num_tensors: int = 0
    part: str = "generator"  # generator | discriminator (MultiscaleDiscriminator)
    dataset: str | None = None  # the released dataset the checkpoint was detected as (or --dataset), None: unknown
    detected: str = ""  # one line saying what was detected and which settings were guessed

    @property
    def model(self) -> str:
        """The lggan class the converted state dict belongs to."""
        return DISCRIMINATOR_MODEL if self.part == "discriminator" else TASK_MODELS[self.task]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __iter__(self):
        # dict(report) gives the same as to_dict()
        return iter(self.to_dict().items())


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint: plain, wrapped under a usual key, or with 'module.' prefixes."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not inner:
            mappings = [v for v in obj.values() if isinstance(v, Mapping)]
            inner = mappings if len(mappings) == 1 else []
        if not inner:
            raise ValueError(f"{source}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]})")
        return unwrap_state_dict(inner[0], source)
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _power_iteration(weight: torch.Tensor, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading singular vectors (u, v) of weight viewed as [out, -1], as torch's spectral_norm stores them."""
    W = weight.detach().reshape(weight.shape[0], -1).double()
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(W.shape[0], generator=gen, dtype=W.dtype), dim=0)
    v = torch.nn.functional.normalize(W.t() @ u, dim=0)
    for _ in range(iters):
        v = torch.nn.functional.normalize(W.t() @ u, dim=0)
        u = torch.nn.functional.normalize(W @ v, dim=0)
    return u.to(weight.dtype), v.to(weight.dtype)


def _complete_spectral_norm(ours: dict[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                            notes: list[str]) -> None:
    """Fills in the spectral-norm tensors of `expected` that a checkpoint saved differently, in place.

    * weight_orig, weight_u, weight (PyTorch < 1.1 saved the normalised weight, no weight_v): v is chosen so that
      u^T W v = sigma, the scale between weight_orig and weight, so eval mode (weight = W / u^T W v) gives exactly the
      saved weight; this is the condition torch's own loader solves for such files.
    * weight_orig, weight_u only: v = normalise(W^T u), the v of torch's next power-iteration step from the stored u.
    * a plain weight: weight_orig = weight, u and v its leading singular vectors.
    """
    for key in [k for k in expected if k.endswith(".weight_orig")]:
        base = key[: -len("_orig")]
        u_key, v_key = base + "_u", base + "_v"
        if key in ours and u_key in ours and v_key not in ours:
            W = ours[key].reshape(ours[key].shape[0], -1).double()  # [out, in*k*k]
            u = ours[u_key].double()
            Wtu = W.t() @ u
            if base in ours and base not in expected:
                saved = ours.pop(base).reshape_as(W).double()
                # Least-squares sigma of weight_orig = sigma * weight (robust to zero entries of weight).
                sigma = (W * W).sum() / (W * saved).sum()
                v = Wtu * (sigma / (Wtu @ Wtu))  # u^T W v = sigma
                notes.append(f"{base}: saved without weight_v (PyTorch < 1.1): v solved from the saved weight")
            else:
                v = torch.nn.functional.normalize(Wtu, dim=0)
                notes.append(f"{base}: saved without weight_v: v = normalise(W^T u) from the stored u")
            ours[v_key] = v.to(ours[key].dtype)
        elif key not in ours and base in ours and base not in expected:
            w = ours.pop(base)
            ours[key] = w
            ours[u_key], ours[v_key] = _power_iteration(w)
            notes.append(f"{base}: plain weight used as weight_orig, spectral-norm vectors recomputed")


def _shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _fmt(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _check_layout(ours: dict[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], unexpected: list[str],
                  what: str) -> dict[str, torch.Tensor]:
    """`ours` in the order of `expected`; raises ValueError '<what>: missing / unexpected keys, shape mismatches'."""
    produced = _shapes(ours)
    missing = [k for k in expected if k not in produced]
    unexpected = unexpected + [k for k in produced if k not in expected]
    wrong = [f"{k} {produced[k]} != {expected[k]}" for k in expected if k in produced and produced[k] != expected[k]]
    if missing or unexpected or wrong:
        parts = [f"missing keys: {_fmt(missing)}" if missing else "",
                 f"unexpected keys: {_fmt(unexpected)}" if unexpected else "",
                 f"shape mismatches: {'; '.join(wrong[:12])}" if wrong else ""]
        raise ValueError(f"{what}: " + "; ".join(p for p in parts if p))
    return {k: ours[k] for k in expected}  # our module order


def expected_shapes(model_name: str, arguments: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of lggan.models.<model_name>(**arguments).state_dict(), built on the meta device (no memory)."""
    from lggan import models

    with torch.device("meta"):
        model = getattr(models, model_name)(**arguments)
    return _shapes(model.state_dict())
