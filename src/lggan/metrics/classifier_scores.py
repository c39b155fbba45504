"""Classifier-based cross-view scores (LGGAN Tables 1-2): Inception Score, accuracy and KL, as pure functions.

Inputs are class-probability tensors [N,K] (rows sum to 1), e.g. Places365 AlexNet softmax outputs of the
generated and the real images, row i of both belonging to the same test pair.
"""

from __future__ import annotations

import math

import torch

# Released scripts: entries outside the top-k are set to this value (no renormalisation).
TOP_K_FLOOR = 1e-9
KL_CLAMP = 1e-12
CONFIDENCE_THRESHOLD = 0.5

CLASSIFIER_PROTOCOL = {
    "inception_score": (
        "exp(mean_i sum_y p_i(y) (ln p_i(y) - ln pbar(y))), pbar = mean_i p_i over the whole set (no splits); "
        f"'top1'/'top5': in each p_i keep the k largest entries, set the others to {TOP_K_FLOOR} "
        "(no renormalisation), pbar recomputed from these"
    ),
    "accuracy": (
        "percent of pairs whose real-image top class c* = argmax p_real is the generated argmax (top1) or "
        f"among the generated 5 largest (top5); 'all' over every pair, 'confident' over pairs with "
        f"max p_real > {CONFIDENCE_THRESHOLD}"
    ),
    "kl": (
        f"KL_i = sum_y p_gen(y) (ln p_gen(y) - ln p_real(y)), probabilities clamped at {KL_CLAMP}; "
        "score = exp(mean_i KL_i), std = population std (ddof 0) of KL_i"
    ),
}


def check_probs(probs: torch.Tensor, name: str = "probs") -> torch.Tensor:
    """Validate a probability matrix [N,K] (non-negative rows summing to 1) and return it as float64."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[0] == 0:
        shape = list(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"{name}: expected a non-empty probability tensor [N,K], got {shape}")
    p = probs.to(torch.float64)
    if (p < 0).any():
        raise ValueError(f"{name}: probabilities must be non-negative")
    sums = p.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        worst = (sums - 1).abs().argmax().item()
        raise ValueError(f"{name}: row {worst} sums to {sums[worst].item():.6g}, expected 1 (apply softmax first)")
    return p


def _check_paired(gen_probs: torch.Tensor, real_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate generated/real probability matrices of the same shape."""
    gen = check_probs(gen_probs, "gen_probs")
    real = check_probs(real_probs, "real_probs")
    if gen.shape != real.shape:
        raise ValueError(f"gen_probs and real_probs shapes differ: {list(gen.shape)} vs {list(real.shape)}")
    return gen, real


def keep_top_k(probs: torch.Tensor, k: int, floor: float = TOP_K_FLOOR) -> torch.Tensor:
    """Keep the k largest entries of each row, set the rest to `floor` (no renormalisation)."""
    if not 1 <= k <= probs.shape[1]:
        raise ValueError(f"k must be in [1, {probs.shape[1]}], got {k}")
    index = probs.topk(k, dim=1).indices
    return torch.full_like(probs, floor).scatter(1, index, probs.gather(1, index))


def inception_score(probs: torch.Tensor, top_k: int | None = None) -> float:
    """IS = exp(mean_i KL(p_i || pbar)) over the whole set; top_k applies the released top-k variant."""
    p = check_probs(probs)
    if top_k is not None:
        p = keep_top_k(p, top_k)
    p_bar = p.mean(dim=0, keepdim=True)
    # xlogy gives 0 * ln 0 = 0 for exact zeros in the "all" variant.
    kl = (torch.xlogy(p, p) - torch.xlogy(p, p_bar)).sum(dim=1)
    return math.exp(kl.mean().item())


def inception_scores(probs: torch.Tensor) -> dict[str, float]:
    """The three reported IS variants: all, top-1 and top-5."""
    return {
        "all": inception_score(probs),
        "top1": inception_score(probs, top_k=1),
        "top5": inception_score(probs, top_k=min(5, probs.shape[1])),
    }


def _percent(hits: torch.Tensor) -> float | None:
    """Percentage of True entries; None for an empty selection."""
    return 100.0 * hits.to(torch.float64).mean().item() if hits.numel() else None


def classification_accuracy(
    gen_probs: torch.Tensor, real_probs: torch.Tensor, threshold: float = CONFIDENCE_THRESHOLD
) -> dict[str, float | int | None]:
    """Top-1/top-5 agreement (%) of generated with real top classes, over all and over confident pairs."""
    gen, real = _check_paired(gen_probs, real_probs)
    target = real.argmax(dim=1)
    top1 = gen.argmax(dim=1) == target
    top5 = (gen.topk(min(5, gen.shape[1]), dim=1).indices == target[:, None]).any(dim=1)
    confident = real.max(dim=1).values > threshold
    return {
        "top1_all": _percent(top1),
        "top1_confident": _percent(top1[confident]),
        "top5_all": _percent(top5),
        "top5_confident": _percent(top5[confident]),
        "num_pairs": int(target.numel()),
        "num_confident": int(confident.sum().item()),
    }


def per_pair_kl(gen_probs: torch.Tensor, real_probs: torch.Tensor, clamp: float = KL_CLAMP) -> torch.Tensor:
    """KL(p_gen || p_real) for each pair, probabilities clamped at `clamp`; [N] float64."""
    gen, real = _check_paired(gen_probs, real_probs)
    gen, real = gen.clamp(min=clamp), real.clamp(min=clamp)
    return (gen * (gen.log() - real.log())).sum(dim=1)


def kl_score(gen_probs: torch.Tensor, real_probs: torch.Tensor) -> dict[str, float]:
    """KL score as reported: exp(mean_i KL_i) and the population std of KL_i."""
    kl = per_pair_kl(gen_probs, real_probs)
    return {
        "score": math.exp(kl.mean().item()),
        "std": kl.std(correction=0).item(),
        "mean_kl": kl.mean().item(),
    }
