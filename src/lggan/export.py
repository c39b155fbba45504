"""`lggan export`: a generator as a self-contained TorchScript or ONNX file for inference.

The exported graph takes class ids, not one-hot maps, and returns the final image I^C [B, 3, H, W] in [-1, 1]:

* semantic synthesis: `label` int64 [B, H, W] (class channels 0..C-1, as `load_generator(...)(label)` takes them)
  and, for models with instance edges, `instance` int64 [B, H, W] (pass the label map again when there are no
  instance maps: its region boundaries are used, as `lggan generate` does);
* cross-view translation: `aerial` float [B, 6, H, W] = concat(I_a, S_g colour) in [-1, 1] and `label` int64
  [B, H, W] (0..C-1, other values = void).

One-hot maps, instance edges and the class masks are computed inside the graph (ids outside 0..C-1 give an all-zero
one-hot column). The local branch runs its dense per-class path (`ClassSpecificConv.forward_dense`): the sparse
tiled path of training and `lggan generate` has data-dependent shapes that a trace cannot capture; both give the same
image. The graph is traced at one size (the model's training size unless --size) and float32; the batch size is free.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ExportFormat, choices
from .io import atomic_write, check_outputs

EXPORT_FORMATS = choices(ExportFormat)
ONNX_OPSET = 18


def exportable(synth: Any) -> nn.Module:
    """The export graph of a loaded generator (a lggan.generate.Synthesizer), float32 on the CPU, eval mode."""
    return synth.task.export_graph(synth.generator.float().cpu().eval()).eval()


def example_inputs(module: nn.Module, size: tuple[int, int], batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of an export graph at size (W, H): random class ids (and instance ids, a random aerial input)."""
    return module.example_inputs(size, batch, torch.Generator().manual_seed(seed))


def description_path(out: str | os.PathLike) -> Path:
    """The JSON written beside an exported file: G.onnx -> G.onnx.json (never a model's own G.json sidecar)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


class MissingPackageError(RuntimeError):
    """An optional package that an export format needs is not installed."""


# What torch.onnx.export (the torch.export-based exporter) needs besides torch: the `export` extra of pyproject.toml.
ONNX_PACKAGES = ("onnx", "onnxscript")


def _require_onnx() -> None:
    import importlib

    def installed(name: str) -> bool:
        try:
            importlib.import_module(name)
        except ImportError:
            return False
        return True

    missing = [name for name in ONNX_PACKAGES if not installed(name)]
    if missing:
        raise MissingPackageError(f"--format onnx: needs the {' and '.join(missing)} package"
                                  f"{'s' if len(missing) > 1 else ''} (pip install {' '.join(missing)}, or "
                                  "pip install -e \".[export]\")")


def export_generator(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str = "torchscript",
                     size: tuple[int, int] | None = None, use_ema: bool = True, overwrite: bool = False
                     ) -> dict[str, Any]:
    """Writes the generator of `checkpoint` (anything `load_generator` takes) as TorchScript (torch.jit.trace), ONNX
    (torch.onnx.export, needs the onnx package) or a torch.export program (.pt2, torch.export.load) to `out`, plus
    OUT.json (e.g. G.onnx.json) describing its inputs and output.

    size: (width, height) the graph is traced at (default: the model's training size). Returns that description.
    Before writing, the traced module is run once and compared with the sparse path (`Synthesizer`) on random ids.
    """
    from .generate import load_generator, model_size

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    sidecar = description_path(out)
    if fmt == "onnx":
        _require_onnx()  # before the model is loaded
    check_outputs("OUTPUT", (out, sidecar), overwrite, inputs={"CHECKPOINT": checkpoint})
    synth = load_generator(checkpoint, device="cpu", use_ema=use_ema, amp="off", channels_last="off")
    size = tuple(size) if size is not None else model_size(synth.cfg)
    module = exportable(synth)
    inputs = example_inputs(module, size)
    # The Synthesizer's arguments (label, instance, aerial) for the same inputs: the sparse path to compare with.
    call = module.synthesizer_arguments(inputs)
    try:  # the size must suit the generator: the model's own input check says so
        synth.task.generator_inputs(*call)
    except ValueError as e:
        raise ValueError(f"--size {size[0]}x{size[1]}: {e}") from None
    with torch.no_grad():
        reference = synth(*call, native=True).image  # at the export size
        names = module.input_names()
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks baked in at this size
                warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)  # deprecated since torch 2.10, works
                traced = torch.jit.trace(module, inputs, check_trace=False)
                got = traced(*inputs)
                atomic_write(out, lambda tmp: torch.jit.save(traced, tmp))
        elif fmt == "export":
            # A torch.export program (.pt2): the successor of TorchScript, loaded with torch.export.load.
            program = torch.export.export(module, inputs, strict=False)
            atomic_write(out, lambda tmp: torch.export.save(program, tmp))
            got = torch.export.load(str(out)).module()(*inputs)
        else:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # the exporter's progress lines and notices
                # torch.export-based (dynamo=True): fixed shapes, weights inside the one file.
                atomic_write(out, lambda tmp: torch.onnx.export(
                    module, inputs, tmp, dynamo=True, external_data=False, input_names=names, output_names=["image"],
                    opset_version=ONNX_OPSET, verbose=False))
            import onnx

            onnx.checker.check_model(str(out))
            got = _run_onnx(out, names, inputs)
            if got is None:  # no onnxruntime: the module that was exported
                got = module(*inputs)
    diff = float((got - reference).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"{out}: the exported graph differs from the generator by {diff:.3g} (max |diff|)")
    info = {
        "format": fmt, "source": str(checkpoint), "task": synth.task_name, "size": list(size),
        "inputs": {n: _input_doc(n, module) for n in names}, "output": "image: float32 [B, 3, H, W] in [-1, 1] (I^C)",
        "num_classes": module.generator.num_classes, "max_abs_diff_vs_sparse_path": diff,
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    return info


def _run_onnx(path: Path, names: list[str], inputs: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
    """The ONNX file's output on `inputs` with onnxruntime, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])


def _input_doc(name: str, module: nn.Module) -> str:
    C = module.generator.num_classes
    return {
        "label": f"int64 [B, H, W]: class ids 0..{C - 1}{module.label_note}",
        "instance": "int64 [B, H, W]: instance ids (edges are where they change; pass the label map when there are "
                    "no instance maps)",
        "aerial": "float32 [B, 6, H, W]: concat(aerial photo, street-map colours) in [-1, 1]",
    }[name]
