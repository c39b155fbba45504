"""Built-in CompactSegmenter: save/load round trip, file errors, and learning a trivially learnable dataset."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset

from lggan.metrics.segmenter import (
    METADATA_KEY,
    CompactSegmenter,
    class_balance_weights,
    load_segmenter,
    read_segmenter_metadata,
    save_segmenter,
    train_segmenter,
)

PALETTE = torch.tensor([[-0.8, -0.8, 0.8], [0.8, -0.8, -0.8], [-0.8, 0.8, -0.8]])  # class -> colour in [-1,1]


class ColourIsClass(Dataset):
    """16x16 scenes of 4x4 blocks; block colour (plus noise) is its class, some blocks ignored (255)."""

    def __init__(self, count: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        blocks = torch.randint(0, 3, (count, 4, 4), generator=gen)
        self.labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
        noise = 0.1 * torch.randn(count, 3, 16, 16, generator=gen)
        self.images = (PALETTE[self.labels].permute(0, 3, 1, 2) + noise).clamp(-1, 1)
        self.labels[:, :4, :4] = 255

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # Shaped like lggan.data samples, including entries the trainer must not batch.
        return {"image": self.images[index], "label": self.labels[index], "instance": None, "path": f"{index}.png"}


def test_compact_segmenter_shapes() -> None:
    model = CompactSegmenter(num_classes=5, width=4)
    assert model(torch.rand(2, 3, 20, 36)).shape == (2, 5, 20, 36)
    assert model(torch.rand(1, 3, 17, 23)).shape == (1, 5, 17, 23)  # odd sizes too


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = CompactSegmenter(num_classes=3, width=4)
    model.train()
    model(torch.randn(4, 3, 16, 16))  # move BatchNorm running statistics away from their defaults
    model.eval()
    path = tmp_path / "seg.safetensors"
    save_segmenter(model, path, class_names=["sky", "road", "car"], training={"iterations": 7})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.safetensors"]  # no temp file left behind
    meta = read_segmenter_metadata(path)
    assert meta["class_names"] == ["sky", "road", "car"] and meta["training"] == {"iterations": 7}
    assert meta["normalisation"] == {"input_range": [0.0, 1.0], "mean": [0.5] * 3, "std": [0.5] * 3}
    seg = load_segmenter(path)
    images = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        expected = model(images * 2 - 1)
    assert torch.allclose(seg.logits(images), expected, atol=1e-6)
    assert seg.class_names == ("sky", "road", "car") and seg.label_protocol == "identity"


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.safetensors does not exist"):
        load_segmenter(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="junk.safetensors is not a safetensors file"):
        load_segmenter(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not an lggan segmenter"):
        load_segmenter(foreign)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={METADATA_KEY: json.dumps({"format": "x", "version": 9})})
    with pytest.raises(ValueError, match="expected 'lggan-compact-segmenter' v1"):
        load_segmenter(wrong)


class _Labels(Dataset):
    """Two 2x2 label maps: class 0 on 5 pixels, class 1 on 2, one ignored pixel; class 2 absent."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        label = torch.tensor([[0, 0], [0, 1]]) if index == 0 else torch.tensor([[0, 255], [0, 1]])
        return {"image": torch.zeros(3, 2, 2), "label": label}


def test_class_balance_weights_by_hand() -> None:
    # Frequencies 5/7 and 2/7; weights 1/sqrt(f), scaled so that sum_c f_c w_c = 1.
    f0, f1 = 5 / 7, 2 / 7
    scale = f0 * f0**-0.5 + f1 * f1**-0.5
    expected = [f0**-0.5 / scale, f1**-0.5 / scale, f1**-0.5 / scale]  # absent class 2: the rarest weight
    assert class_balance_weights(_Labels(), 3).tolist() == pytest.approx(expected, rel=1e-6)


def test_training_argument_errors(tmp_path: Path) -> None:
    data = ColourIsClass(4, seed=0)
    with pytest.raises(ValueError, match="class_names has 2 entries for 3 classes"):
        train_segmenter(data, tmp_path / "s.safetensors", 3, iterations=1, class_names=["a", "b"], progress=False)
    with pytest.raises(ValueError, match="label_protocol must be one of"):
        train_segmenter(data, tmp_path / "s.safetensors", 3, iterations=1, label_protocol="voc", progress=False)
    with pytest.raises(ValueError, match="iterations and batch_size"):
        train_segmenter(data, tmp_path / "s.safetensors", 3, iterations=0, progress=False)
    assert not (tmp_path / "s.safetensors").exists()


def test_training_learns_colour_is_class(tmp_path: Path) -> None:
    path = tmp_path / "out" / "seg.safetensors"
    summary = train_segmenter(
        ColourIsClass(32, seed=0), path, num_classes=3, iterations=120, batch_size=8, lr=5e-3, width=8, progress=False
    )
    assert summary["path"] == str(path) and summary["iterations"] == 120
    seg = load_segmenter(path)
    assert read_segmenter_metadata(path)["training"]["final_loss"] == pytest.approx(summary["final_loss"])
    test = ColourIsClass(8, seed=1)
    pred = seg.predict((test.images + 1) / 2)  # Segmenter input is [0,1]
    valid = test.labels != 255
    accuracy = (pred[valid] == test.labels[valid]).double().mean().item()
    assert accuracy > 0.95
