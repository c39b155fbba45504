"""No weights file is ever unpickled in a way that can run code, and broken weights files fail with one clear line.

Every loader gets a pickle whose __reduce__ would create a marker file when unpickled (the payload is first shown
to work with weights_only=False), an empty file and random bytes, each under the file name the loader looks for.
"""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan import losses
from lggan.cli import main
from lggan.convert import load_official_file
from lggan.metrics.fid import INCEPTION_WEIGHTS_FILE, build_inception_extractor
from lggan.metrics.places365 import PLACES365_WEIGHTS_FILE, load_places365_alexnet

OFFICIAL_FILE = "latest_net_G.pth"
KINDS = ("payload", "empty", "random")


class _TouchOnUnpickle:
    """Unpickling this calls Path.touch(marker): stands in for any code a malicious weights file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _write(path: Path, kind: str, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "payload":
        # A tensor next to the payload, as a doctored real checkpoint would hold.
        torch.save({"state_dict": {"w": torch.zeros(2), "x": _TouchOnUnpickle(marker)}}, path)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker_created_by_unpickling"


def test_the_payload_really_runs_code_without_weights_only(tmp_path: Path, marker: Path) -> None:
    path = _write(tmp_path / "evil.pth", "payload", marker)
    torch.load(path, weights_only=False)  # what torch-fidelity's own Inception loader does
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(_TouchOnUnpickle(marker)))
    assert marker.exists()


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache (TORCH_HOME/hub/checkpoints), where the loaders look by default."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    assert folder == tmp_path / "torch_home" / "hub" / "checkpoints"
    return folder


def _single_error_line(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"lggan {command}: error: ")
    return err[0]


@pytest.mark.parametrize("kind", KINDS)
def test_inception_weights_are_loaded_without_running_code(tmp_path: Path, marker: Path, hub: Path,
                                                           kind: str) -> None:
    given = _write(tmp_path / "w" / INCEPTION_WEIGHTS_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        build_inception_extractor(given)
    assert str(given) in str(info.value) and "\n" not in str(info.value)
    cached = _write(hub / INCEPTION_WEIGHTS_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        build_inception_extractor()  # the file in the hub cache
    assert str(cached) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_places365_weights_are_loaded_without_running_code(tmp_path: Path, marker: Path, hub: Path,
                                                           kind: str) -> None:
    given = _write(tmp_path / "w" / PLACES365_WEIGHTS_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        load_places365_alexnet(given)
    assert str(given) in str(info.value) and "\n" not in str(info.value)
    _write(hub / PLACES365_WEIGHTS_FILE, kind, marker)
    with pytest.raises(ValueError, match=PLACES365_WEIGHTS_FILE):
        load_places365_alexnet()
    assert not marker.exists()


def test_places365_loader_has_no_pickle_escape_hatch() -> None:
    import inspect

    from lggan.metrics import folders, places365

    for fn in (places365.load_places365_state_dict, places365.load_places365_alexnet, folders.score_image_folders):
        assert "allow_pickle" not in inspect.signature(fn).parameters


@pytest.mark.parametrize("kind", KINDS)
def test_vgg19_weights_are_loaded_without_running_code(tmp_path: Path, marker: Path, hub: Path, kind: str) -> None:
    given = _write(tmp_path / "w" / losses.VGG19_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        losses.VGGLoss(weights_path=given)
    assert str(given) in str(info.value) and "\n" not in str(info.value)
    cached = _write(hub / losses.VGG19_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        losses.VGGLoss()
    assert str(cached) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_official_checkpoint_is_loaded_without_running_code(tmp_path: Path, marker: Path, kind: str,
                                                            capsys: pytest.CaptureFixture) -> None:
    given = _write(tmp_path / OFFICIAL_FILE, kind, marker)
    with pytest.raises(ValueError) as info:
        load_official_file(given)
    assert str(given) in str(info.value) and "\n" not in str(info.value)
    out = tmp_path / "out.safetensors"
    assert main(["convert-official", str(given), str(out)]) == 2
    assert str(given) in _single_error_line(capsys, "convert-official")
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not marker.exists()


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        Image.fromarray(np.full((32, 32), i, np.uint8)).save(tmp_path / f"label_{i}.png")
    return folder


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flag,file_name,metric", [
    ("--inception-weights", INCEPTION_WEIGHTS_FILE, "fid"),
    ("--places365-weights", PLACES365_WEIGHTS_FILE, "accuracy"),
])
def test_evaluate_weights_options_fail_in_one_line_without_running_code(
    tmp_path: Path, marker: Path, hub: Path, image_folder: Path, capsys: pytest.CaptureFixture, kind: str,
    flag: str, file_name: str, metric: str,
) -> None:
    out = tmp_path / "r.json"
    common = ["evaluate", "--generated", str(image_folder), "--real", str(image_folder), "--metrics", metric,
              "--out", str(out), "--no-progress", "--device", "cpu"]
    given = _write(tmp_path / "w" / file_name, kind, marker)
    assert main(common + [flag, str(given)]) == 2
    line = _single_error_line(capsys, "evaluate")
    assert str(given) in line and flag in line
    # The same file where lggan looks when the option is left out.
    cached = _write(hub / file_name, kind, marker)
    assert main(common) == 2
    assert str(cached) in _single_error_line(capsys, "evaluate")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_segmenter_option_fails_in_one_line_without_running_code(
    tmp_path: Path, marker: Path, image_folder: Path, capsys: pytest.CaptureFixture, kind: str, suffix: str,
) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(2):
        (tmp_path / f"label_{i}.png").rename(labels / f"{i}.png")
    seg = _write(tmp_path / f"segmenter{suffix}", kind, marker)
    out = tmp_path / "r.json"
    assert main(["evaluate", "--generated", str(image_folder), "--real", str(image_folder), "--labels", str(labels),
                 "--metrics", "miou", "--segmenter", str(seg), "--dataset", "custom", "--num-classes", "2",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 2
    assert str(seg) in _single_error_line(capsys, "evaluate")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("kind", ["empty", "random"])
@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_checkpoint_option_with_a_broken_safetensors_file(tmp_path: Path, marker: Path, image_folder: Path,
                                                          capsys: pytest.CaptureFixture, kind: str,
                                                          command: str) -> None:
    from lggan.config import get_preset

    weights = _write(tmp_path / "model.safetensors", kind, marker)
    weights.with_suffix(".json").write_text(json.dumps({"config": get_preset("synth").to_dict()}))
    out = tmp_path / "out"
    args = ["--checkpoint", str(weights), "--device", "cpu"]
    if command == "generate":
        args += ["--labels", str(tmp_path / "label_0.png"), "--out", str(out)]
    else:
        args += ["--generated", str(image_folder), "--real", str(image_folder), "--metrics", "ssim",
                 "--out", str(out / "r.json"), "--no-progress"]
    assert main([command] + args) == 2
    assert str(weights) in _single_error_line(capsys, command)
    assert not out.exists()


def test_checkpoint_sidecar_that_is_not_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    weights.with_suffix(".json").write_text("{not json")
    assert main(["generate", "--checkpoint", str(weights), "--labels", str(tmp_path), "--out",
                 str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert "model.json" in _single_error_line(capsys, "generate")
    assert set(os.listdir(tmp_path)) == {"model.safetensors", "model.json"}
