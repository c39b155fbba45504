"""Speed settings of training and inference: which precision and memory format a device runs fastest with.

    amp_decision(mode, device_type, bf16_native)        -> (autocast dtype or None, use a grad scaler)
    channels_last_decision(mode, device_type, dtype)    -> bool
    speed_plan(...)                                     -> SpeedPlan (printed at start-up, written to run_info.json)

bf16 autocast pays off only where the hardware multiplies bf16 natively: CUDA GPUs of compute capability >= 8.0
(Ampere and later) and CPUs with AMX-BF16 or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later; on
ARM the `bf16` extension, e.g. Neoverse V1/V2). Elsewhere PyTorch emulates bf16 (convert, multiply in fp32, round),
which gives the same numbers far slower (a G forward+backward at ngf 16, 256x128 took 43 s instead of 1.5 s of CPU
time on an AVX2 AMD EPYC), so `auto` stays in fp32 there.

Under autocast only the matmul-like ops (convolutions, transposed convolutions, bmm, linear) run in bf16; the master
weights, the optimiser state, spectral norm's power iteration (torch.mv / torch.dot are not autocast ops: they stay
fp32 on CPU and CUDA) and batch-norm running statistics (fp32 buffers, updated with fp32 accumulation whatever the
input dtype) stay fp32. `AutocastFloat` and `to_float` hand every network output to the losses as fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import AmpMode, ChannelsLastMode, InferenceAmpMode, choices

# /proc/cpuinfo flags (and torch.cpu.get_capabilities keys) that mean bf16 matmuls run natively.
# x86: AMX tiles with bf16 (amx_bf16) or the AVX-512 bf16 dot products (avx512_bf16); ARM: the bf16 extension.
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16")


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The CPU's feature names: torch's own detection (cpuinfo) where it has it, else /proc/cpuinfo's flag lines."""
    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get is not None:
        try:
            return {k for k, v in get().items() if v is True}
        except Exception:  # an odd platform: fall back to the kernel's list
            pass
    flags: set[str] = set()
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):  # x86 "flags", ARM "Features"
            flags.update(value.split())
    return flags


def cpu_name() -> str:
    """The CPU's model name (e.g. "AMD EPYC"), or the architecture when it cannot be found."""
    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get is not None:
        try:
            name = get().get("cpu_name")
            if isinstance(name, str) and name.strip():
                return name.strip()
        except Exception:
            pass
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_native(flags: set[str] | frozenset[str] | None = None) -> bool:
    """Whether this CPU (or one with the given feature flags) computes bf16 matmuls natively."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_CPU_FLAGS)


def device_bf16_native(device: torch.device) -> bool:
    """bf16 natively on `device`: CUDA compute capability >= 8.0, or a CPU with AMX/AVX512-BF16 (ARM: bf16)."""
    if device.type == "cuda":
        try:
            return torch.cuda.get_device_capability(device)[0] >= 8
        except Exception:
            return False
    if device.type == "cpu":
        return cpu_bf16_native()
    return False


def amp_decision(mode: str, device_type: str, bf16_native: bool) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, use a GradScaler) for train.amp / --amp `mode` on a device type.

    auto: bf16 where the device has it natively (CUDA >= Ampere, CPUs with AMX/AVX512-BF16), else fp32;
    bf16: bf16 autocast on any device (emulated, so slower, where it is not native; same numbers);
    fp16: CUDA only, with a GradScaler (fp16's range needs loss scaling); off: fp32.
    """
    if mode not in choices(AmpMode):
        raise ValueError(f"train.amp={mode}: must be one of {', '.join(choices(AmpMode))}")
    if mode == "off":
        return None, False
    if mode == "fp16":
        if device_type != "cuda":
            raise ValueError(f"train.amp='fp16' needs a CUDA device (float16 with a GradScaler), not {device_type}: "
                             "use bf16, auto or off")
        return torch.float16, True
    if mode == "bf16":
        return torch.bfloat16, False
    return (torch.bfloat16, False) if bf16_native and device_type in ("cuda", "cpu") else (None, False)


def channels_last_decision(mode: str, device_type: str, autocast_dtype: torch.dtype | None) -> bool:
    """Whether G and the discriminators run channels-last (NHWC) for train.channels_last / `channels_last` `mode`.

    auto: on for CUDA (cuDNN's NHWC kernels, tensor cores) and for CPU bf16 (oneDNN's AMX / AVX512-BF16
    convolutions work in NHWC-like blocked layouts; not measured here: no such CPU was at hand); off for CPU fp32,
    where it was measured slower: a G forward+backward at ngf 64, 256x128, batch 1, one thread took 22.9 s of CPU
    time channels-last against 13.2 s contiguous (median of 4) on an AMD EPYC (AVX2, torch 2.14). The forward
    convolutions cost the same; oneDNN's fp32 convolution backward is ~1.65x slower in NHWC there, and the layout
    copies (instance norm works on NCHW) grow 6x.
    """
    if mode not in choices(ChannelsLastMode):
        raise ValueError(f"train.channels_last={mode}: must be one of {', '.join(choices(ChannelsLastMode))}")
    if mode != "auto":
        return mode == "on"
    if device_type == "cuda":
        return True
    return device_type == "cpu" and autocast_dtype == torch.bfloat16


def to_channels_last(module: nn.Module) -> nn.Module:
    """Every 4-d parameter and buffer of `module` (conv weights [out, in, k, k]) in channels-last layout, in place.

    nn.Module.to(memory_format=...) cannot be used: it also converts 5-d tensors, and the stacked class-conv weight
    [C, 3, ngf, 7, 7] has no channels-last layout. Values and parameter identities are unchanged.
    """
    return module._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)


def channels_last_input(t: Any) -> Any:
    """A 4-d float tensor [B, C, H, W] in channels-last layout; anything else as it is."""
    if isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    return t


def to_float(obj: Any) -> Any:
    """Every floating tensor in `obj` (tensors, tuples/NamedTuples, lists, dicts, dataclasses) as float32.

    Applied to network outputs made under autocast, so that every loss (and the image handed to a caller) is
    computed in fp32; integer tensors (class indices) and fp32/fp64 tensors pass through unchanged.
    """
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() and obj.dtype in (torch.bfloat16, torch.float16) else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple (GeneratorOutput)
        return type(obj)(*(to_float(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float(v) for v in obj)
    if isinstance(obj, dict):
        return {k: to_float(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # ClassImages
        return dataclasses.replace(obj, **{f.name: to_float(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                                           if f.init})
    return obj


def autocast(device_type: str, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on the device type, or a no-op context for fp32 (dtype None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


class AutocastFloat(nn.Module):
    """Calls `module` under autocast and returns its outputs as float32 (the losses then run in fp32).

    Used around the discriminators and VGG's slices during training. It is never registered inside another
    module, so state dicts and checkpoints are unaffected.
    """

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype | None):
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with autocast(self.device_type, self.dtype):
            out = self.module(*args, **kwargs)
        return to_float(out)


@dataclasses.dataclass(frozen=True)
class SpeedPlan:
    """What a run decided about precision and layout, and why (printed at start-up, saved as run_info.json)."""

    device: str  # "cpu", "cuda:0", ...
    device_name: str  # the CPU's model name, or the GPU's
    cpu_name: str
    bf16_native: bool  # on `device`
    amp: str  # the mode asked for (train.amp / --amp)
    autocast: str | None  # "bfloat16", "float16" or None (fp32)
    grad_scaler: bool
    channels_last: bool
    channels_last_mode: str
    activation_checkpointing: bool = False
    compile: bool = False

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return None if self.autocast is None else getattr(torch, self.autocast)

    def line(self) -> str:
        """The one start-up line."""
        cast = f"on ({self.autocast})" if self.autocast else "off (fp32)"
        extra = "".join([", activation checkpointing on" if self.activation_checkpointing else "",
                         ", torch.compile on" if self.compile else ""])
        gpu = f" ({self.device_name})" if self.device_name != self.cpu_name else ""
        return (f"device {self.device}{gpu}, CPU {self.cpu_name}, bf16 native: {'yes' if self.bf16_native else 'no'}, "
                f"autocast {cast} [amp={self.amp}], channels-last {'on' if self.channels_last else 'off'} "
                f"[{self.channels_last_mode}]{extra}")

    def emulated_bf16_note(self) -> str | None:
        """A one-line warning when bf16 autocast was forced on a device that only emulates it."""
        if self.autocast == "bfloat16" and not self.bf16_native:
            return (f"train.amp=bf16 on {self.device_name}, which has no native bf16: it is emulated, with the "
                    "same numbers but far slower than fp32 (train.amp=auto chooses fp32 here)")
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "torch": torch.__version__}


def speed_plan(device: torch.device, amp: str, channels_last: str, activation_checkpointing: bool = False,
               compile: bool = False, bf16_native: bool | None = None) -> SpeedPlan:
    """Decides autocast and channels-last for `device` (bf16_native: None detects it)."""
    native = device_bf16_native(device) if bf16_native is None else bf16_native
    dtype, scaler = amp_decision(amp, device.type, native)
    cl = channels_last_decision(channels_last, device.type, dtype)
    cpu = cpu_name()
    name = cpu
    if device.type == "cuda":
        try:
            name = torch.cuda.get_device_name(device)
        except Exception:
            name = "CUDA device"
    return SpeedPlan(device=str(device), device_name=name, cpu_name=cpu, bf16_native=native, amp=amp,
                     autocast=None if dtype is None else str(dtype).removeprefix("torch."), grad_scaler=scaler,
                     channels_last=cl, channels_last_mode=channels_last,
                     activation_checkpointing=activation_checkpointing, compile=compile)


def amp_settings(mode: str, device: torch.device, bf16_native: bool | None = None) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler) of train.amp on `device` (amp_decision).

    auto: bf16 where the device has it natively (CUDA >= Ampere, CPUs with AMX/AVX512-BF16), fp32 elsewhere.
    bf16_native: None detects it.
    """
    native = device_bf16_native(device) if bf16_native is None else bf16_native
    return amp_decision(mode, device.type, native)


def check_inference_modes(amp: str, channels_last: str) -> None:
    """One-line ValueError naming the argument when --amp / channels_last is not an allowed value."""
    if amp not in choices(InferenceAmpMode):
        raise ValueError(f"--amp {amp!r}: expected one of {', '.join(choices(InferenceAmpMode))}")
    if channels_last not in choices(ChannelsLastMode):
        raise ValueError(f"channels_last={channels_last!r}: expected one of {', '.join(choices(ChannelsLastMode))}")


def inference_plan(device: torch.device, amp: str = "auto", channels_last: str = "auto") -> SpeedPlan:
    """speed_plan for `lggan generate` / `evaluate` / load_generator: amp is one of InferenceAmpMode."""
    check_inference_modes(amp, channels_last)
    return speed_plan(device, amp, channels_last)


__all__ = [
    "NATIVE_BF16_CPU_FLAGS",
    "AutocastFloat",
    "SpeedPlan",
    "amp_decision",
    "amp_settings",
    "autocast",
    "channels_last_decision",
    "channels_last_input",
    "check_inference_modes",
    "cpu_bf16_native",
    "cpu_flags",
    "cpu_name",
    "device_bf16_native",
    "inference_plan",
    "speed_plan",
    "to_channels_last",
    "to_float",
]
