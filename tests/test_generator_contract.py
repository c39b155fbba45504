"""One contract for every LGGAN generator (semantic LGGANGenerator, CrossViewGenerator): output fields and ranges,
the fusion of Eq. 6-7, copies, batch independence, safetensors round trip, which branch trains which parameters,
the S1 switch (global path only) and deterministic evaluation. Tiny widths, 32-64 px inputs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lggan.data.crossview import VOID_LABEL, class_masks
from lggan.models import CrossViewGenerator, GeneratorOutput, LGGANGenerator

NUM_CLASSES = 5
BLOCK = 8  # label maps are made of BLOCK x BLOCK squares
TOL = dict(rtol=1e-5, atol=1e-6)


def blocky_labels(batch: int, size: tuple[int, int], seed: int, absent: tuple[int, ...] = ()) -> torch.Tensor:
    """``[B, H, W]`` class ids in BLOCK-px squares. Each sample misses class ``b % C`` (so samples differ in their
    class sets) and every class in ``absent``; every other class covers at least one square of every sample."""
    height, width = size
    g = torch.Generator().manual_seed(seed)
    labels = []
    for b in range(batch):
        classes = [c for c in range(NUM_CLASSES) if c != b % NUM_CLASSES and c not in absent]
        cells = torch.tensor(classes)[torch.randint(len(classes), (height // BLOCK, width // BLOCK), generator=g)]
        # Forced squares at the end, away from the void corner crossview_inputs paints at the top left.
        cells.view(-1)[-len(classes) :] = torch.tensor(classes)[torch.randperm(len(classes), generator=g)]
        labels.append(cells.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1))
    return torch.stack(labels)


def semantic_inputs(batch: int, seed: int, absent: tuple[int, ...] = (), size: tuple[int, int] = (32, 64)
                    ) -> tuple[torch.Tensor]:
    """S = one-hot class masks + an instance-edge channel, 32x64 (64x64 for the 'more' layout's 64 px step)."""
    labels = blocky_labels(batch, size, seed, absent)
    edges = (torch.rand(labels.shape, generator=torch.Generator().manual_seed(seed)) < 0.1).float().unsqueeze(1)
    return (torch.cat([F.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float(), edges], 1),)


def crossview_inputs(batch: int, seed: int, absent: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """x = concat(I_a, S_g) in [-1, 1] and class masks M with a void corner, 32x48."""
    labels = blocky_labels(batch, (32, 48), seed, absent)
    labels[:, :BLOCK, :BLOCK] = VOID_LABEL
    x = torch.rand(batch, 6, 32, 48, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x, class_masks(labels, NUM_CLASSES)


@dataclass(frozen=True)
class GeneratorCase:
    """How to build one generator configuration and feed it."""

    name: str
    build: Callable[..., nn.Module]  # keyword overrides (use_local=...) -> model
    inputs: Callable[..., tuple]  # (batch, seed, absent=()) -> forward arguments
    local_combine: str
    has_classifier: bool
    # Encoder parameters that only the global generator G_g reads (the semantic encoder's deep path).
    global_only: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.name


CASES = [
    GeneratorCase(
        "semantic",
        lambda **kw: LGGANGenerator(NUM_CLASSES, NUM_CLASSES + 1, **{
            "ngf": 4, "spade_hidden": 8, "num_res_blocks": 1, "tile_size": 8, **kw}),
        semantic_inputs, "conv", True, ("encoder.conv4.", "encoder.conv5."),
    ),
    GeneratorCase(
        "semantic-more",  # the Cityscapes release's layout: start grid (H, W)/64, an extra 2x between the middle blocks
        lambda **kw: LGGANGenerator(NUM_CLASSES, NUM_CLASSES + 1, **{
            "ngf": 4, "spade_hidden": 8, "num_res_blocks": 1, "tile_size": 8, "num_upsampling_layers": "more", **kw}),
        lambda batch, seed, absent=(): semantic_inputs(batch, seed, absent, size=(64, 64)),
        "conv", True, ("encoder.conv4.", "encoder.conv5."),
    ),
    GeneratorCase(
        "crossview-release",
        lambda **kw: CrossViewGenerator(6, NUM_CLASSES, **{"ngf": 4, "num_res_blocks": 1, "tile_size": 8, **kw}),
        crossview_inputs, "sum", False,
    ),
    GeneratorCase(
        "crossview-conv-classifier",
        lambda **kw: CrossViewGenerator(6, NUM_CLASSES, **{
            "ngf": 4, "num_res_blocks": 1, "tile_size": 8, "local_combine": "conv", "use_classifier": True,
            "class_pool": "mask", **kw}),
        crossview_inputs, "conv", True,
    ),
]
BRANCH_PREFIXES = {"image_global": "global_generator.", "image_local": "local.", "weight_local": "weight_map.",
                   "class_logits": "classifier."}  # fmt: skip

pytestmark = pytest.mark.parametrize("case", CASES, ids=str)


def tensors_of(out: GeneratorOutput) -> dict[str, torch.Tensor]:
    """Every tensor a forward pass returns (the sparse class images as their dense [B, C, 3, H, W] form)."""
    fields = {name: value for name, value in out._asdict().items() if isinstance(value, torch.Tensor)}
    if out.class_images is not None:
        fields["class_images"] = out.class_images.dense()
    return fields


def assert_same_outputs(a: GeneratorOutput, b: GeneratorOutput, exact: bool = False) -> None:
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        if exact:
            assert torch.equal(ta[name], tb[name]), name
        else:
            torch.testing.assert_close(ta[name], tb[name], **TOL, msg=lambda m: f"{name}: {m}")


def train_step(G: nn.Module, case: GeneratorCase) -> None:
    """One forward/backward in training mode: updates BatchNorm statistics and spectral-norm vectors."""
    G.train()
    G(*case.inputs(2, seed=7)).image.square().mean().backward()


def test_output_fields_and_shapes(case):
    G = case.build().eval()
    args = case.inputs(3, seed=0)
    out = G(*args)
    B, H, W = args[0].shape[0], args[0].shape[-2], args[0].shape[-1]
    for name in ("image", "image_global", "image_local"):
        assert getattr(out, name).shape == (B, 3, H, W), name
    assert out.weight_local.shape == out.weight_global.shape == (B, 1, H, W)
    assert out.class_images.dense().shape == (B, NUM_CLASSES, 3, H, W)
    if case.has_classifier:
        assert out.class_logits.shape == (B, NUM_CLASSES, NUM_CLASSES)
        masks = args[0][:, :NUM_CLASSES] if len(args) == 1 else args[1]
        assert out.class_valid.dtype == torch.bool and torch.equal(out.class_valid, masks.flatten(2).amax(-1) > 0)
        assert not out.class_valid.all()  # each sample misses a class
    else:
        assert out.class_logits is None and out.class_valid is None
    assert all(torch.isfinite(t).all() for t in tensors_of(out).values())


def test_value_ranges_and_fusion(case):
    out = case.build().eval()(*case.inputs(2, seed=1))
    assert out.image_global.abs().max() <= 1  # tanh
    assert out.class_images.dense().abs().max() <= 1  # each I^l_i is a tanh image
    # Eq. 4 ends in a tanh; Eq. 3 sums C tanh images.
    bound = 1 if case.local_combine == "conv" else NUM_CLASSES
    assert out.image_local.abs().max() <= bound
    # Eq. 6: W_l, W_g are the two channels of a per-pixel softmax.
    assert (out.weight_local >= 0).all() and (out.weight_global >= 0).all()
    torch.testing.assert_close(out.weight_local + out.weight_global, torch.ones_like(out.weight_local))
    assert out.weight_local.std() > 1e-4  # predicted per pixel, not a constant
    # Eq. 7, and so I^C lies between I^G and I^L at every pixel.
    torch.testing.assert_close(out.image, out.image_global * out.weight_global + out.image_local * out.weight_local)
    low, high = torch.minimum(out.image_global, out.image_local), torch.maximum(out.image_global, out.image_local)
    assert (out.image >= low - 1e-6).all() and (out.image <= high + 1e-6).all()


def test_eval_forward_is_deterministic(case):
    G = case.build().eval()
    args = case.inputs(2, seed=2)
    first = G(*args)
    assert_same_outputs(first, G(*args), exact=True)
    assert not torch.equal(first.image, G(*case.inputs(2, seed=3)).image)  # and it does depend on the input


def test_deepcopy_after_a_training_step_gives_identical_outputs(case):
    G = case.build()
    train_step(G, case)
    twin = copy.deepcopy(G).eval()
    args = case.inputs(2, seed=4)
    assert_same_outputs(twin(*args), G.eval()(*args), exact=True)


def test_samples_of_a_batch_are_independent_in_eval(case):
    # In float64: the region-constant SPADE's tables hold the keys of the whole batch, so a sample's GEMMs differ in
    # shape (and float32 rounding, ~1e-6) alone and in a batch; any real coupling would be far above 1e-10.
    G = case.build().double()
    G.train()
    G(*(a.double() for a in case.inputs(2, seed=7))).image.square().mean().backward()  # BatchNorm statistics
    G.eval()
    args = tuple(a.double() for a in case.inputs(3, seed=5))
    together = tensors_of(G(*args))
    for i in range(3):
        alone = tensors_of(G(*(a[i : i + 1] for a in args)))
        for name, value in alone.items():
            torch.testing.assert_close(together[name][i : i + 1], value, rtol=1e-10, atol=1e-10,
                                       msg=lambda m: f"{name}[{i}]: {m}")


def test_safetensors_round_trip_into_a_fresh_model(case, tmp_path):
    G = case.build()
    train_step(G, case)
    G.eval()
    path = tmp_path / "generator.safetensors"
    save_file({k: v.detach().contiguous().clone() for k, v in G.state_dict().items()}, str(path))
    torch.manual_seed(1234)  # a fresh model starts from different weights
    fresh = case.build().eval()
    args = case.inputs(2, seed=6)
    assert not torch.equal(fresh(*args).image, G(*args).image)
    fresh.load_state_dict(load_file(str(path)), strict=True)
    assert_same_outputs(fresh(*args), G(*args), exact=True)


def grads_of(G: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor | None]:
    G.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name: p.grad for name, p in G.named_parameters()}


def reached(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_each_branch_trains_the_shared_encoder_and_only_its_own_parameters(case):
    G = case.build().train()
    out = G(*case.inputs(2, seed=8))
    terms = {"image_global": out.image_global, "image_local": out.image_local, "weight_local": out.weight_local}
    for branch, term in terms.items():
        grads = grads_of(G, term.square().mean())
        own = (BRANCH_PREFIXES[branch], *case.global_only) if branch == "image_global" else (BRANCH_PREFIXES[branch],)
        for name, grad in grads.items():
            if name.startswith(own):
                assert reached(grad), f"{branch} does not train {name}"
            elif name.startswith("encoder.") and not name.startswith(case.global_only):
                assert reached(grad), f"{branch} does not train the shared encoder's {name}"
            else:
                assert not reached(grad), f"{branch} reaches {name}, which it does not use"


def test_full_loss_reaches_every_parameter_and_absent_classes_stay_untouched(case):
    absent = NUM_CLASSES - 1
    G = case.build().train()
    out = G(*case.inputs(2, seed=9, absent=(absent,)))
    loss = out.image.square().mean() + out.image_global.abs().mean() + out.image_local.abs().mean()
    if case.has_classifier:
        target = torch.arange(NUM_CLASSES).expand(2, -1)
        loss = loss + F.cross_entropy(out.class_logits[out.class_valid], target[out.class_valid])
    grads = grads_of(G, loss)
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all(), name
        if name != "local.class_conv.weight":
            assert reached(grad), name
    # I^l_i of a class absent from the batch is the constant tanh(b_i): its conv weights get no gradient.
    per_class = grads["local.class_conv.weight"].flatten(1).abs().sum(1)
    assert per_class[absent] == 0 and (per_class[:absent] > 0).all()


def test_s1_switch_runs_the_global_path_only(case):
    full = case.build().eval()
    G = case.build(use_local=False).eval()
    keys = set(G.state_dict())
    assert not any(k.startswith(tuple(p for b, p in BRANCH_PREFIXES.items() if b != "image_global")) for k in keys)
    assert keys == {k for k in full.state_dict() if k.startswith(("encoder.", "global_generator."))}
    G.load_state_dict({k: v for k, v in full.state_dict().items() if k in keys}, strict=True)
    args = case.inputs(2, seed=10)
    out = G(*args)
    assert out.image is out.image_global
    assert all(getattr(out, name) is None for name in ("image_local", "class_images", "weight_local",
                                                       "weight_global", "class_logits", "class_valid"))
    # Same weights: the switch leaves the global path exactly as it is inside the full model.
    torch.testing.assert_close(out.image_global, full(*args).image_global, rtol=0, atol=0)
