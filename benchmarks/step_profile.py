"""Where the time of one training iteration goes: torch.profiler (CPU) events attributed to the parts of the model.

Used by `python -m benchmarks.train_step --profile OUT.md`.  How the CPU time is attributed:

* Forward: every module of interest gets a forward pre-hook / hook pair that opens and closes a
  `record_function("scope: <part>")` range (prepended, so spectral norm's power iteration in the module's own
  pre-hook counts for the module); a few plain functions are wrapped the same way (the dense reference head, G_l's
  up-convs, the finite check, the EMA update).  An op belongs to its innermost scope.  Ops outside every module
  (loss terms, stacking real and fake images for the D call, detaches) are "losses + glue".
* Backward: the autograd engine runs each node under `autograd::engine::evaluate_function: <Node>`, whose sequence
  number is that of the forward op that created the node; the node's whole time goes to that forward op's part.
  AccumulateGrad nodes are "parameter gradient accumulation".
* Phases: `lggan.training.steps.g_step` / `d_step` are wrapped in `record_function("phase: G step")` / `("phase: D step")`
  for the duration of the profile (restored afterwards); what runs outside them (learning rates, input preparation)
  is "outside the steps".
* The optimiser's own `Optimizer.step#...` / `Optimizer.zero_grad#...` ranges (torch.optim emits them) give the
  optimiser step and zero_grad.

Every event's self CPU time is added to exactly one (part, phase, direction) cell, so the cells add up to the
profiled iteration's CPU time on the main thread.  The profiler itself adds some overhead per op (the profiled
iteration is slower than an unprofiled one; the report gives both).
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

PHASE = "phase: "
SCOPE = "scope: "
EVALUATE = "autograd::engine::evaluate_function: "

# The parts of one iteration, in the order of the report.
G_GLOBAL = "G_g: global SPADE generator"
G_ENCODER = "G_e: shared encoder"
G_LOCAL_BODY = "G_l: residual blocks + up-convs"
G_LOCAL_HEAD = "G_l: class-specific head (Eq. 1-4)"
G_CLASSIFIER = "classifier (Eq. 5)"
G_WEIGHT = "G_w: weight maps"
G_OTHER = "G: masks + fusion (rest of G.forward)"
DISC = "D: discriminators"
LOSSES = "losses + glue (outside modules)"
OPT_STEP = "optimiser step"
ZERO_GRAD = "zero_grad"
FINITE = "finite check"
EMA = "EMA update"
ACCUM = "parameter gradient accumulation"
OUTSIDE = "outside the steps (lr, input preparation)"
UNMATCHED = "backward, unattributed"
PARTS = (G_GLOBAL, G_ENCODER, G_LOCAL_BODY, G_LOCAL_HEAD, G_CLASSIFIER, G_WEIGHT, G_OTHER, DISC, LOSSES, ACCUM,
         OPT_STEP, ZERO_GRAD, FINITE, EMA, OUTSIDE, UNMATCHED)
# Parts that make up "G forward/backward", "local branch" in the summary.
G_PARTS = (G_GLOBAL, G_ENCODER, G_LOCAL_BODY, G_LOCAL_HEAD, G_CLASSIFIER, G_WEIGHT, G_OTHER)
LOCAL_PARTS = (G_LOCAL_BODY, G_LOCAL_HEAD, G_CLASSIFIER, G_WEIGHT)


class Scopes(contextlib.AbstractContextManager):
    """Opens profiler ranges around module forwards and function calls; everything is undone on exit."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def hook(self, module: nn.Module, label: str) -> None:
        open_ranges: list[Any] = []

        def pre(mod, args):
            rf = torch.autograd.profiler.record_function(SCOPE + label)
            rf.__enter__()
            open_ranges.append(rf)

        def post(mod, args, out):
            if open_ranges:
                open_ranges.pop().__exit__(None, None, None)

        handles = [module.register_forward_pre_hook(pre, prepend=True),
                   module.register_forward_hook(post, always_call=True)]
        self._undo += [h.remove for h in handles]

    def wrap(self, owner: Any, name: str, label: str | Callable[..., str | None], prefix: str = SCOPE) -> bool:
        """Replaces owner.<name> by a wrapper that runs it inside a range (label: text, or a function of the call's
        arguments returning the text or None for no range). Returns False when owner has no such attribute."""
        orig = getattr(owner, name, None)
        if orig is None:
            return False

        @functools.wraps(orig)
        def wrapper(*args, **kwargs):
            text = label(*args, **kwargs) if callable(label) else label
            if text is None:
                return orig(*args, **kwargs)
            with torch.autograd.profiler.record_function(prefix + text):
                return orig(*args, **kwargs)

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, orig))
        return True

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()


def instrument(scopes: Scopes, G: nn.Module, discriminators: Iterable[nn.Module]) -> list[str]:
    """Scopes for an LGGANGenerator, the discriminators and lggan.training's steps; returns what could not be hooked."""
    import benchmarks.reference as reference
    import lggan.models.local_generator as local_generator
    import lggan.training.steps as steps

    missing = []
    for attr, label in (("encoder", G_ENCODER), ("global_generator", G_GLOBAL), ("classifier", G_CLASSIFIER),
                        ("weight_map", G_WEIGHT)):
        if isinstance(getattr(G, attr, None), nn.Module):
            scopes.hook(getattr(G, attr), label)
    scopes.hook(G, G_OTHER)
    local = getattr(G, "local", None)
    if isinstance(local, nn.Module):
        scopes.hook(local, G_LOCAL_HEAD)  # what G_l runs outside its blocks and up-convs: the class head + combine
        for block in getattr(local, "res_blocks", []):
            scopes.hook(block, G_LOCAL_BODY)
        deconvs = [m for m in (getattr(local, "deconv_1", None), getattr(local, "deconv_2", None)) if m is not None]

        def upconv_label(x, deconv, *a, **k):
            return G_LOCAL_BODY if any(deconv is d for d in deconvs) else None

        for owner in (local_generator, reference):  # the model's and the reference's up-conv + IN + ReLU
            scopes.wrap(owner, "upconv_in_relu", upconv_label)
    scopes.wrap(reference, "reference_local_head", G_LOCAL_HEAD)  # the reference variant's dense head
    scopes.wrap(reference, "reference_global", G_GLOBAL)  # and its G_g with SPADE as released
    for D in discriminators:
        scopes.hook(D, DISC)
    for name, label, prefix in (("g_step", "G step", PHASE), ("d_step", "D step", PHASE),
                                ("all_finite", FINITE, SCOPE), ("ema_update", EMA, SCOPE)):
        if not scopes.wrap(steps, name, label, prefix):
            missing.append(f"lggan.training.steps.{name}")
    return missing


@dataclass
class Breakdown:
    """Self CPU time (us) per (part, phase, direction); top ops by self time, each with the part most of it is in."""

    cells: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.cells.values())

    def part(self, part: str, phase: str | None = None, direction: str | None = None) -> float:
        return sum(v for (p, ph, d), v in self.cells.items()
                   if p == part and (phase is None or ph == phase) and (direction is None or d == direction))

    def phase_sum(self, phase: str, direction: str) -> float:
        return sum(v for (p, ph, d), v in self.cells.items() if ph == phase and d == direction)

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [{"part": p, "phase": ph, "direction": d, "self_cpu_us": v}
                          for (p, ph, d), v in sorted(self.cells.items())],
                "ops": self.ops, "total_us": self.total}

    @classmethod
    def minimum(cls, found: list[Breakdown]) -> Breakdown:
        """Per (part, phase, direction) cell and per op the smallest time over several profiles of the same work.

        Load from other processes only ever adds time, so on a shared machine this is the best estimate of each
        part's own cost (the total is then the sum of the minima, not the time of any one iteration)."""
        if len(found) == 1:
            return found[0]
        out = cls()
        for key in {k for b in found for k in b.cells}:
            out.cells[key] = min(b.cells.get(key, 0.0) for b in found)
        for name in {n for b in found for n in b.ops}:
            out.ops[name] = dict(min((b.ops[name] for b in found if name in b.ops), key=lambda o: o["self_cpu_us"]))
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Breakdown:
        b = cls()
        for c in doc["cells"]:
            b.cells[(c["part"], c["phase"], c["direction"])] += c["self_cpu_us"]
        b.ops = doc["ops"]
        return b


def _range_label(name: str) -> str | None:
    if name.startswith(SCOPE):
        return name[len(SCOPE):]
    if name.startswith("Optimizer.step#"):
        return OPT_STEP
    if name.startswith("Optimizer.zero_grad#"):
        return ZERO_GRAD
    return None


def _start(e) -> float:
    tr = getattr(e, "time_range", None)
    return tr.start if tr is not None else 0.0


def attribute(events: Iterable[Any]) -> Breakdown:
    """Breakdown of profiler FunctionEvents (prof.events(); needs .name, .cpu_parent, .sequence_nr, .id and
    .self_cpu_time_total)."""
    events = list(events)
    state: dict[int, tuple[str, str | None, Any]] = {}  # event id -> (phase, scope label, evaluate_function event)

    def info(e) -> tuple[str, str | None, Any]:
        key = id(e)
        if key in state:
            return state[key]
        chain = []
        x = e
        while x is not None and id(x) not in state:
            chain.append(x)
            x = x.cpu_parent
        phase, scope, bwd = state[id(x)] if x is not None else ("outside", None, None)
        for y in reversed(chain):
            if y.name.startswith(PHASE):
                phase = y.name[len(PHASE):]
            label = _range_label(y.name)
            if label is not None:
                scope = label
            if y.name.startswith(EVALUATE):
                bwd = y
            state[id(y)] = (phase, scope, bwd)
        return state[key]

    def forward_part(phase: str, scope: str | None) -> str:
        if scope is not None:
            return scope
        return LOSSES if phase != "outside" else OUTSIDE

    # The forward part of every sequence number.  An op that creates an autograd node records the node's number;
    # ops before it that create none (grad-free ops, composite wrappers) record the same, next, number: in time
    # order the last forward op with a number is its node's creator.
    seq_part: dict[int, str] = {}
    for e in sorted(events, key=_start):
        phase, scope, bwd = info(e)
        seq = getattr(e, "sequence_nr", -1)
        if bwd is None and seq is not None and seq >= 0:
            seq_part[seq] = forward_part(phase, scope)
    out = Breakdown()
    op_parts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    op_calls: dict[str, int] = defaultdict(int)
    for e in events:
        phase, scope, bwd = info(e)
        if bwd is not None:
            direction = "backward"
            if "AccumulateGrad" in bwd.name:
                part = ACCUM
            else:
                part = seq_part.get(bwd.sequence_nr, UNMATCHED)
        else:
            direction = "forward"
            part = forward_part(phase, scope)
        t = float(e.self_cpu_time_total)
        out.cells[(part, phase, direction)] += t
        op_parts[e.name][part] += t
        op_calls[e.name] += 1
    for name, parts in op_parts.items():
        main = max(parts, key=parts.get)
        out.ops[name] = {"self_cpu_us": sum(parts.values()), "calls": op_calls[name], "main_part": main,
                         "main_part_share": parts[main] / max(sum(parts.values()), 1e-9)}
    return out


# ----------------------------------------------------------------------------------------------------- report

def _s(us: float) -> str:
    return f"{us / 1e6:.2f}"


def breakdown_table(b: Breakdown) -> list[str]:
    total = b.total
    lines = ["| part | G step fwd | G step bwd | D step fwd | D step bwd | other | total s | share |",
             "|---|---|---|---|---|---|---|---|"]
    for part in PARTS:
        t = b.part(part)
        if t <= 0:
            continue
        cols = [b.part(part, ph, d) for ph in ("G step", "D step") for d in ("forward", "backward")]
        other = t - sum(cols)
        lines.append(f"| {part} | " + " | ".join(_s(c) if c else "" for c in cols)
                     + f" | {_s(other) if other > 1 else ''} | {_s(t)} | {100 * t / total:.1f} % |")
    cols = [b.phase_sum(ph, d) for ph in ("G step", "D step") for d in ("forward", "backward")]
    lines.append("| **all** | " + " | ".join(_s(c) for c in cols) + f" | {_s(total - sum(cols))} | {_s(total)} | 100 % |")
    return lines


def summary_rows(b: Breakdown) -> list[tuple[str, float]]:
    """The shares the report leads with: (what, self CPU us)."""
    g_fwd_g = b.part(G_GLOBAL, "G step", "forward")
    g_bwd = b.part(G_GLOBAL, "G step", "backward")
    return [
        ("global SPADE generator G_g, G step forward", g_fwd_g),
        ("global SPADE generator G_g, G step backward", g_bwd),
        ("global SPADE generator G_g, D step forward (fakes regenerated, no grad)", b.part(G_GLOBAL, "D step")),
        ("discriminators, forward (G step + D step)", b.part(DISC, direction="forward")),
        ("discriminators, backward (G step + D step)", b.part(DISC, direction="backward")),
        ("local branch (G_l body + class head + classifier + weight maps), all phases",
         sum(b.part(p) for p in LOCAL_PARTS)),
        ("  of which the class-specific head (Eq. 1-4)", b.part(G_LOCAL_HEAD)),
        ("encoder, masks + fusion", b.part(G_ENCODER) + b.part(G_OTHER)),
        ("loss terms + glue (forward + backward)", b.part(LOSSES)),
        ("optimiser steps (G + D) + zero_grad + gradient accumulation + finite check",
         b.part(OPT_STEP) + b.part(ZERO_GRAD) + b.part(ACCUM) + b.part(FINITE)),
        ("everything else (EMA, lr, input preparation, unattributed)",
         b.part(EMA) + b.part(OUTSIDE) + b.part(UNMATCHED)),
    ]


def top_ops_table(b: Breakdown, n: int = 15) -> list[str]:
    total = b.total
    lines = ["| op | calls | self CPU s | share | mostly in (share of the op's time) |", "|---|---|---|---|---|"]
    for name, op in sorted(b.ops.items(), key=lambda kv: -kv[1]["self_cpu_us"])[:n]:
        shown = name.replace("|", "\\|")
        if name.startswith((SCOPE, PHASE)):  # a range's own self time: the interpreter between the ops inside it
            shown = f"(Python between ops) {name.split(': ', 1)[1]}"
        else:
            shown = f"`{shown}`"
        share = 100 * op["self_cpu_us"] / total
        lines.append(f"| {shown} | {op['calls']} | {_s(op['self_cpu_us'])} | {share:.1f} % | {op['main_part']} "
                     f"({100 * op['main_part_share']:.0f} %) |")
    return lines


def comparison_table(a: Breakdown, b: Breakdown, name_a: str, name_b: str) -> list[str]:
    lines = [f"| part | {name_a} s | {name_b} s | {name_b} - {name_a} s |", "|---|---|---|---|"]
    for part in PARTS:
        ta, tb = a.part(part), b.part(part)
        if ta <= 0 and tb <= 0:
            continue
        lines.append(f"| {part} | {_s(ta)} | {_s(tb)} | {(tb - ta) / 1e6:+.2f} |")
    lines.append(f"| **all** | {_s(a.total)} | {_s(b.total)} | {(b.total - a.total) / 1e6:+.2f} |")
    return lines
