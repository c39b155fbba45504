"""The semantic discriminator: SPADE's MultiscaleDiscriminator <-> MultiscaleDiscriminator, both directions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .layout import ConversionReport, _check_layout, _complete_spectral_norm, _fmt, expected_shapes, unwrap_state_dict
from .names import _OUR_D_LAYER, _TRAINING_D_PREFIX, DISCRIMINATOR_RULES, rename_keys
from .semantic import RELEASED_SEMANTIC, _check_dataset, _indices

DISCRIMINATOR_ANCHOR = "discriminator_0.model0.0.weight"  # SPADE's MultiscaleDiscriminator, first scale's first conv


def infer_discriminator_arguments(state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
                                  ) -> dict[str, Any]:
    """MultiscaleDiscriminator arguments implied by an official SPADE/LGGAN semantic discriminator's keys and shapes."""
    if DISCRIMINATOR_ANCHOR not in state_dict:
        raise ValueError(f"{source}: not an official semantic discriminator: missing key {DISCRIMINATOR_ANCHOR} "
                         f"(found e.g. {_fmt(list(state_dict), 8)})")
    ndf, in_channels = (int(d) for d in state_dict[DISCRIMINATOR_ANCHOR].shape[:2])
    scales = _indices(state_dict, r"discriminator_(\d+)\.model0\.0\.weight")
    if scales != list(range(len(scales))):
        raise ValueError(f"{source}: discriminator scales must run discriminator_0..N-1, got {scales}")
    layers = sorted({int(m[1]) for k in state_dict if (m := re.match(r"discriminator_0\.model(\d+)\.", k))})
    if layers != list(range(len(layers))) or len(layers) < 2:
        raise ValueError(f"{source}: discriminator_0's layers must run model0..modelN (N >= 1), got {layers}")
    middle = [k for k in state_dict if re.fullmatch(r"discriminator_0\.model\d+\.0\.0\.weight_(orig|u)", k)]
    return dict(in_channels=in_channels, ndf=ndf, n_layers=len(layers) - 1, num_d=len(scales),
                spectral=bool(middle) or len(layers) == 2)


def convert_official_discriminator(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                                   dataset: str | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Maps an official semantic discriminator ({epoch}_net_D.pth) onto MultiscaleDiscriminator's state dict."""
    sd = unwrap_state_dict(state_dict, source)
    _check_dataset(dataset)
    arguments = infer_discriminator_arguments(sd, source)
    semantic_nc = arguments["in_channels"] - 3  # D sees concat(S, image)
    guess = next((n for n, r in RELEASED_SEMANTIC.items() if r.semantic_nc == semantic_nc), None)
    used_dataset = dataset or guess
    how = "given" if dataset else ("detected from the shapes" if guess else "not a released layout")
    a = arguments
    report = ConversionReport(arguments=arguments, part="discriminator", dataset=used_dataset,
                              detected=f"{used_dataset or 'unknown dataset'} ({how}) semantic discriminator: "
                                       f"{a['num_d']} scales x {a['n_layers'] + 1} convs, ndf {a['ndf']}, "
                                       f"input {a['in_channels']} = {semantic_nc} label channels + 3")
    ours, unexpected = rename_keys(sd, DISCRIMINATOR_RULES)
    expected = expected_shapes("MultiscaleDiscriminator", arguments)
    _complete_spectral_norm(ours, expected, report.notes)
    ours = _check_layout(ours, expected, unexpected, f"{source}: does not match the official semantic "
                         f"discriminator layout inferred from its shapes ({arguments})")
    report.num_tensors = len(ours)
    return ours, report


def export_official_discriminator(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping: a MultiscaleDiscriminator state dict (or our training checkpoint's D_s.*) under the
    official names discriminator_{s}.model{n}...."""
    sd = dict(state_dict)
    if sd and all(k.startswith(_TRAINING_D_PREFIX) for k in sd):
        sd = {k[len(_TRAINING_D_PREFIX):]: v for k, v in sd.items()}
    matches = {k: _OUR_D_LAYER.fullmatch(k) for k in sd}
    unmatched = [k for k, m in matches.items() if m is None]
    if unmatched:
        raise ValueError(f"export: keys with no official discriminator name: {_fmt(unmatched)}")
    last = max(int(m[2]) for m in matches.values())
    out = {}
    for k, m in matches.items():
        s, n, rest = int(m[1]), int(m[2]), m[3]
        inner = "0" if n in (0, last) else "0.0"  # middle convs sit inside the (conv, IN) Sequential
        out[f"discriminator_{s}.model{n}.{inner}.{rest}"] = sd[k]
    return out
