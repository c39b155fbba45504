import subprocess
import sys

import pytest

from lggan.cli import build_parser, main

SUBCOMMANDS = ["data", "train", "generate", "convert-official", "export-official", "evaluate", "train-segmenter"]


def test_help_lists_every_subcommand():
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text


@pytest.mark.parametrize("argv", [[c] for c in SUBCOMMANDS if c != "data"]
                         + [["data", "synth-city"], ["data", "synth-views"], ["data", "inspect"]])
def test_every_subcommand_has_help_with_defaults(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: lggan " + " ".join(argv) in out
    if argv in (["train"], ["data", "synth-city"]):
        assert "(default:" in out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "lggan", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout


def test_bad_override_is_a_clear_error_not_a_traceback(capsys, tmp_path):
    code = main(["train", "--out", str(tmp_path / "r"), "--set", "train.batch_size=zero"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.batch_size=zero: must be an integer" in err and "Traceback" not in err


def test_unknown_preset_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "nope"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_synth_city_command_writes_the_dataset_and_prints_a_class_table(tmp_path, capsys):
    out = tmp_path / "city"
    assert main(["data", "synth-city", "--out", str(out), "--num-train", "3", "--num-val", "1",
                 "--size", "64x32"]) == 0
    text = capsys.readouterr().out
    assert len(list((out / "leftImg8bit" / "train" / "synth").glob("*.png"))) == 3
    for name in ("road", "sky", "car", "person"):
        assert name in text
    # inspect on the same folder lists the same table.
    assert main(["data", "inspect", str(out), "--dataset", "cityscapes"]) == 0
    assert "road" in capsys.readouterr().out


def test_inspect_reports_a_missing_folder(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "nope"), "--dataset", "ade20k"]) == 2
    assert "nope" in capsys.readouterr().err


def test_synth_views_command_writes_panels_and_inspect_reads_them(tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["data", "synth-views", "--out", str(out), "--num-train", "2", "--num-test", "1", "--size", "64",
                 "--workers", "1"]) == 0
    assert len(list((out / "train").glob("*.png"))) == 2 and len(list((out / "test").glob("*.png"))) == 1
    capsys.readouterr()
    assert main(["data", "inspect", str(out), "--dataset", "crossview"]) == 0
    text = capsys.readouterr().out
    assert "sky" in text and "vehicle" in text and "problems: 0" in text


def test_help_of_every_command_imports_no_heavy_library():
    """`lggan --help` and `lggan CMD --help` build the parser without PyTorch, torchvision, Gradio or matplotlib
    (their import is most of a command's start-up; benchmarks/startup.py times it)."""
    import subprocess
    import sys

    from benchmarks.startup import commands

    lines = commands()
    assert ["--help"] in lines and ["data", "inspect", "--help"] in lines and ["demo", "--help"] in lines
    script = (
        "import contextlib, io, sys\n"
        "from lggan.cli import main\n"
        f"for line in {lines!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(line)\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (line, e.code)\n"
        "    assert 'usage: lggan' in out.getvalue(), line\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'gradio', 'matplotlib', 'cityscapesscripts') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_declared_metric_names_are_the_registered_ones():
    from lggan.config import ImageMetricName, LabelPaletteName, LabelProtocol, choices
    from lggan.data.palette import LABEL_PALETTE_NAMES, builtin_label_palette
    from lggan.metrics.folders import CLASSIFIER_METRIC_NAMES, DISTRIBUTION_METRIC_NAMES, PIXEL_METRIC_NAMES
    from lggan.metrics.segmentation import LABEL_PROTOCOL_TEXT

    assert sorted(choices(ImageMetricName)) == sorted(PIXEL_METRIC_NAMES + CLASSIFIER_METRIC_NAMES
                                                      + DISTRIBUTION_METRIC_NAMES)
    assert sorted(LABEL_PROTOCOL_TEXT) == sorted(choices(LabelProtocol))
    assert LABEL_PALETTE_NAMES == choices(LabelPaletteName)
    assert [builtin_label_palette(n).name for n in LABEL_PALETTE_NAMES] == list(LABEL_PALETTE_NAMES)


def test_print_config_notes_a_spade_width_that_does_not_follow_ngf(capsys):
    import json

    assert main(["train", "--print-config", "--set", "model.ngf=8"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"]["spade_hidden"] == 32  # the synth preset's, unchanged
    assert captured.err.strip() == ("note: model.ngf=8 (preset synth: 16) leaves model.spade_hidden at 32, a width "
                                    "of its own (the release keeps 128 whatever ngf is); scale it with --set "
                                    "model.spade_hidden=N")
    assert main(["train", "--print-config", "--set", "model.ngf=8", "--set", "model.spade_hidden=16"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["train", "--print-config", "--preset", "synth-views", "--set", "model.ngf=8"]) == 0  # no SPADE
    assert capsys.readouterr().err == ""


def test_a_long_error_is_one_cut_line_that_says_how_long_it_was(capsys):
    from lggan.cli import MAX_ERROR_CHARS

    assert main(["train", "--print-config", "--set", "model.ngf=" + "x" * 5000]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and len(err) <= MAX_ERROR_CHARS + len("lggan train: ") + 10
    assert err.endswith("characters in all)") and "model.ngf" in err
