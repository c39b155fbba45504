"""The `lggan` command line: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import copy
import os
import sys
import traceback
import warnings
from pathlib import Path

from .config import CROSSVIEW_DATASETS, SEMANTIC_DATASETS, InferenceAmpMode, choices, size_arg
from .io import one_line
from .progress import add_progress_argument

# `data inspect` also takes the released cross-view datasets by name (same 6/4-panel format as "crossview").
CROSSVIEW_FORMATS = CROSSVIEW_DATASETS + ("dayton", "cvusa")
DEBUG_ENV = "LGGAN_DEBUG"  # set to 1 for full tracebacks, as --debug does
CACHE_ENV = "LGGAN_CACHE"  # lggan.data.storage.CACHE_ENV, spelled out so that `lggan --help` stays light


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, except the empty ones (None/False) whose meaning the help text already gives."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:  # identity: a default of 0 is shown
            return action.help or ""
        return super()._get_help_string(action)

    def add_argument(self, action: argparse.Action) -> None:
        # An option without a help text would show no default at all (argparse prints nothing after it).
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if action.help is None and action.option_strings and not hidden:
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        super().add_argument(action)


# -- data ----------------------------------------------------------------------------------------------------


def cmd_synth_city(a: argparse.Namespace) -> None:
    from .data import (default_synth_city_root, format_report, format_synth_summary, generate_synth_city,
                       inspect_dataset, is_synth_city, summarize_synth_city)

    out = Path(a.out) if a.out else default_synth_city_root(a.num_train, a.num_val, a.size, a.seed)
    if is_synth_city(out) and not a.force:
        print(f"{out} already holds a synthetic city; not regenerating (pass --force to replace it)")
        summary = summarize_synth_city(out)
    else:
        summary = generate_synth_city(out, a.num_train, a.num_val, a.size, a.seed, workers=a.workers,
                                      progress=not a.no_progress, overwrite=a.force)
    print(format_synth_summary(summary))
    print(format_report(inspect_dataset(out, "cityscapes")))


def cmd_synth_views(a: argparse.Namespace) -> None:
    from .data import default_synth_views_root, format_crossview_report, generate_synth_views, inspect_crossview

    out = Path(a.out) if a.out else default_synth_views_root(a.size, a.num_train, a.num_test, a.seed)
    if (out / "train").is_dir() and not a.force:
        print(f"{out} already holds synthetic views; not regenerating (pass --force to replace it)")
    else:
        summary = generate_synth_views(out, a.num_train, a.num_test, a.size, a.seed, workers=a.workers,
                                       progress=not a.no_progress, overwrite=a.force)
        print(f"generated {a.num_train} train + {a.num_test} test samples in {summary['seconds']:.1f} s")
    print(format_crossview_report(inspect_crossview(out)))
    print(f"\nsynthetic cross-view data (6-panel format) at: {out}")


def cmd_inspect(a: argparse.Namespace) -> int:
    if a.dataset in CROSSVIEW_FORMATS:
        from .data.inspect import format_crossview_report, inspect_crossview

        report = inspect_crossview(a.path, split=a.split, mask_palette=a.palette, progress=not a.no_progress)
        print(format_crossview_report(report))
        return 0 if not report.problems else 1
    from .data import format_report, inspect_dataset

    report = inspect_dataset(a.path, a.dataset, a.split, a.num_classes, a.dontcare, image_dir=a.image_dir,
                             label_dir=a.label_dir, instance_dir=a.instance_dir, max_pairs=a.max_pairs,
                             palette=a.palette, progress=not a.no_progress)
    print(format_report(report))
    return 0 if report.ok else 1


# -- models --------------------------------------------------------------------------------------------------


def _fresh_run_dir(base: Path) -> Path:
    """runs/<preset>, or runs/<preset>-2, -3, ... when earlier runs are there (only when --out is not given)."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


# `lggan train` shortcuts: each is the --set item of its field (applied before the --set items themselves).
TRAIN_SHORTCUTS = {"batch_size": "train.batch_size", "device": "train.device", "iterations": "train.iterations"}


def _config_from_args(a: argparse.Namespace):
    """The resolved config: --preset (or the run's own config with --resume), then --config FILE, then --data,
    then the shortcuts (--batch-size, --device, --iterations), then --set; validated once at the end."""
    from .config import Config, apply_config_file, apply_overrides, get_preset, read_config_file

    if a.resume and not a.out:
        raise ValueError("--resume needs --out RUN_FOLDER (the run to continue)")
    config_file = getattr(a, "config", None)
    file_preset = read_config_file(config_file).get("preset") if config_file else None
    if file_preset is not None and a.preset is not None and file_preset != a.preset:
        raise ValueError(f"--config {config_file}: names preset {file_preset!r} but --preset {a.preset} was given "
                         "(drop one of them)")
    preset = a.preset or file_preset
    if a.resume and (Path(a.out) / "config.json").exists() and preset is None:
        cfg = Config.load_json(Path(a.out) / "config.json")
    else:
        cfg = get_preset(preset or "synth")
    if config_file:
        cfg = apply_config_file(cfg, config_file)
    if a.data:
        cfg.data.root = a.data
    shortcuts = [f"{field}={getattr(a, dest)}" for dest, field in TRAIN_SHORTCUTS.items()
                 if getattr(a, dest, None) is not None]
    if getattr(a, "no_progress", False):
        shortcuts.append("train.progress=false")
    return apply_overrides(cfg, shortcuts + (a.set or []))


def cmd_train(a: argparse.Namespace) -> int:
    import json

    cfg = _config_from_args(a)
    if getattr(a, "print_config", False):
        from .tasks import make_task

        print(json.dumps(cfg.to_dict(), indent=2))
        for note in make_task(cfg).config_notes():  # on stderr: stdout stays the JSON
            print(f"note: {note}", file=sys.stderr)
        return 0
    from .training import train

    out = Path(a.out) if a.out else _fresh_run_dir(Path("runs") / cfg.preset)
    result = train(cfg, out, resume=a.resume)
    if result.stopped_by == "signal":
        return 128 + int(result.signal or 2)  # the shell convention for "stopped by signal N"
    if not result.is_main:  # under torchrun only rank 0 reports (the others hold no checkpoint path)
        return 0
    if result.stopped_by == "time budget":
        print(f"stopped at the time budget (train.max_seconds={cfg.train.max_seconds:g})")
    print(f"finished {result.iteration} iterations: {result.images_per_second:.2f} img/s, peak memory "
          f"{result.peak_memory_mb:.0f} MiB\nrun folder: {result.run_dir}\nlast checkpoint: "
          f"{result.last_checkpoint}\nsamples: {result.run_dir / 'samples'}\ncurves: lggan plot {result.run_dir}")
    return 0


def cmd_plot(a: argparse.Namespace) -> None:
    from .plot import plot_run

    info = plot_run(a.run, a.out, overwrite=a.overwrite)
    metrics = f", {info['metric_panels']} metric panel(s)" if info["metric_panels"] else ", no eval records"
    print(f"wrote {info['out']}: {info['loss_panels']} loss panel(s){metrics}, iterations "
          f"{info['first_iteration']}..{info['last_iteration']}")


def cmd_generate(a: argparse.Namespace) -> None:
    from .evaluate import apply_threads
    from .generate import generate_folder

    apply_threads(a.threads)
    written = generate_folder(a.checkpoint, a.labels, a.out, instances=a.instances,
                              batch_size=a.batch_size, device=a.device, save_branches=a.save_branches,
                              use_ema=not a.no_ema, overwrite=a.overwrite, amp=a.amp, size=a.size,
                              native=a.native, palette=a.palette, progress=not a.no_progress, html=a.html)
    branches = (" (and I^G, I^L, W_g, W_l of each in global/, local/, weight_global/, weight_local/, and its "
                "per-class images I^l_i in classes/)")
    if a.native:
        at = " at the label maps' own sizes"
    else:
        from PIL import Image

        with Image.open(written[0]) as first:
            at = f" at {first.size[0]}x{first.size[1]}" + ("" if a.size else " (the model's training size)")
    print(f"wrote {len(written)} images to {a.out}{at}" + (branches if a.save_branches else ""))


def cmd_convert(a: argparse.Namespace) -> None:
    from .convert import arguments_path, convert_official_file

    report = convert_official_file(a.input, a.output, dataset=a.dataset, num_upsampling_layers=a.num_upsampling_layers,
                                   overwrite=a.overwrite)
    print(f"detected: {report.detected}" if report.detected else f"detected: {report.task} {report.part}")
    print("\n".join(f"{k}: {v}" for k, v in dict(report).items() if k != "detected"))
    print(f"wrote {a.output} and {arguments_path(a.output)}")


def cmd_export(a: argparse.Namespace) -> None:
    from .convert import export_official_file

    info = export_official_file(a.ours, a.output, part=a.part, overwrite=a.overwrite)
    kept = f", unused tensors from {info['unused_file']}" if info["unused_file"] else ""
    settings = f"; its data settings (size, crop, palette) in {info['settings_file']}" if info["settings_file"] else ""
    print(f"wrote {a.output}: {info['num_tensors']} tensors of the release's {info['kind']} layout "
          f"(from {info['source']}{kept}){settings}")


def cmd_export_model(a: argparse.Namespace) -> None:
    from .evaluate import apply_threads
    from .export import description_path, export_generator

    apply_threads(a.threads)
    info = export_generator(a.checkpoint, a.output, fmt=a.format, size=a.size, use_ema=not a.no_ema,
                            overwrite=a.overwrite)
    w, h = info["size"]
    print(f"wrote {a.output} ({a.format}, {w}x{h}, inputs {', '.join(info['inputs'])} -> image; max |diff| against "
          f"the generator {info['max_abs_diff_vs_sparse_path']:.2g}) and {description_path(a.output)}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .evaluate import evaluate_cli

    evaluate_cli(a)


def cmd_ablation(a: argparse.Namespace) -> None:
    from .ablation import ablation_cli

    ablation_cli(a, "lggan " + " ".join(a.argv))


def cmd_train_segmenter(a: argparse.Namespace) -> None:
    from .evaluate import train_segmenter_cli

    train_segmenter_cli(a)


def version_text() -> str:
    """`lggan --version`: lggan's version and torch's (with its build tag, e.g. 2.5.1+cu124)."""
    from importlib import metadata

    from . import __version__

    try:
        import torch

        torch_version = torch.__version__
    except Exception:  # a broken install still gets its version printed, from the package metadata
        try:
            torch_version = metadata.version("torch") + " (does not import)"
        except metadata.PackageNotFoundError:
            torch_version = "not installed"
    return f"lggan {__version__} (torch {torch_version}, Python {sys.version.split()[0]})"


class _VersionAction(argparse.Action):
    """Prints `version_text()` and exits (argparse's own version action would need the text up front)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


# On the main parser and every subcommand; SUPPRESS so that `lggan --debug train` is not reset by train's parser.
_DEBUG = dict(action="store_true", default=argparse.SUPPRESS,
              help=f"print the full traceback of an error (also: {DEBUG_ENV}=1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lggan",
        description="LGGAN (CVPR 2020): semantic image synthesis and cross-view image translation.",
        formatter_class=_Formatter,
        epilog=f"Errors print one line and exit with code 2; --debug (or {DEBUG_ENV}=1) prints the full traceback.\n"
               f"{CACHE_ENV}: the cache folder of the built-in synthetic datasets and segmenters (default "
               "~/.cache/lggan).\nEach command's options and their defaults: lggan COMMAND --help.",
    )
    p.add_argument("--debug", **_DEBUG)
    p.add_argument("--version", action=_VersionAction, help="print lggan's version and torch's, then exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", **_DEBUG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="make or check datasets", formatter_class=_Formatter, parents=[common])
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    s = dsub.add_parser("synth-city", help="generate the built-in synthetic street scenes (Cityscapes layout)",
                        formatter_class=_Formatter, parents=[common])
    s.add_argument("--out", help="output folder (default: the cache folder that `lggan train` uses)")
    s.add_argument("--num-train", type=int, default=500)
    s.add_argument("--num-val", type=int, default=100)
    s.add_argument("--size", type=size_arg, default=(256, 128), help="WIDTHxHEIGHT")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per 8 images, at most min(cores, 8); 0 or 1: this process)")
    s.add_argument("--force", action="store_true", help="replace an existing synthetic city at --out")
    add_progress_argument(s)
    s.set_defaults(func=cmd_synth_city)

    s = dsub.add_parser("synth-views", help="generate the built-in synthetic cross-view towns (6-panel format)",
                        formatter_class=_Formatter, parents=[common])
    s.add_argument("--out", help="output folder (default: the cache folder that `lggan train` uses)")
    s.add_argument("--num-train", type=int, default=500)
    s.add_argument("--num-test", type=int, default=100)
    s.add_argument("--size", type=int, default=256, help="panel size in pixels (256 or 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per 8 images, at most min(cores, 8); 0 or 1: this process)")
    s.add_argument("--force", action="store_true", help="replace existing data at --out")
    add_progress_argument(s)
    s.set_defaults(func=cmd_synth_views)

    s = dsub.add_parser("inspect", help="count pairs, sizes and class frequencies; list every problem found",
                        formatter_class=_Formatter, parents=[common])
    s.add_argument("path", help="dataset root folder")
    s.add_argument("--dataset", required=True, choices=SEMANTIC_DATASETS + CROSSVIEW_FORMATS)
    s.add_argument("--split", default=None, help="one split (default: every split present)")
    s.add_argument("--num-classes", type=int, default=None, help="custom datasets: number of classes")
    s.add_argument("--dontcare", type=int, default=None, help="custom datasets: label value meaning don't care")
    s.add_argument("--image-dir", default=None, help="custom datasets: image folder name")
    s.add_argument("--label-dir", default=None, help="custom datasets: label folder name")
    s.add_argument("--instance-dir", default=None, help="custom datasets: instance folder name")
    s.add_argument("--max-pairs", type=int, default=None, help="scan at most this many pairs per split")
    s.add_argument("--palette", default=None, metavar="NAME|FILE.json",
                   help="read colour (RGB) label images through this colour -> label id palette, a built-in name or "
                        "a JSON file; the report says which data.num_classes the palette's ids need. Cross-view: the "
                        "palette of the map panels (default: the release's gray codes for 6-panel files); void pixels "
                        "are reported per colour")
    add_progress_argument(s)
    s.set_defaults(func=cmd_inspect)

    from .config import PRESETS

    t = sub.add_parser("train", help="train LGGAN (no arguments: the synth preset on the built-in synthetic city)",
                       formatter_class=_Formatter, parents=[common])
    t.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="configuration preset (default: synth, or the run's own config with --resume)")
    t.add_argument("--data", default=None, help="dataset root (default: built-in synthetic data for synth presets)")
    t.add_argument("--out", default=None,
                   help="run folder: config, logs, samples, checkpoints (default: runs/PRESET, or runs/PRESET-2, "
                        "-3, ... if that is taken)")
    t.add_argument("--config", default=None, metavar="FILE",
                   help="a JSON or YAML (.yaml/.yml, needs PyYAML) file of config sections, e.g. "
                        "{\"train\": {\"batch_size\": 8}} (any part of a run's config.json); applied after --preset "
                        "and before the shortcuts and --set")
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. --set train.batch_size=8 (repeatable; applied last)")
    t.add_argument("--batch-size", type=int, default=None, metavar="N", help="shortcut for --set train.batch_size=N")
    t.add_argument("--device", default=None, metavar="DEV", help="shortcut for --set train.device=DEV (auto, cpu, cuda, cuda:1, ...)")
    t.add_argument("--iterations", type=int, default=None, metavar="N", help="shortcut for --set train.iterations=N")
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved config as JSON and exit without training")
    t.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    add_progress_argument(t, "; shortcut for --set train.progress=false (a line per log step remains)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("plot", help="draw a run's loss and metric curves (log.jsonl) into a PNG",
                       formatter_class=_Formatter, parents=[common])
    s.add_argument("run", help="run folder (or its log.jsonl)")
    s.add_argument("--out", default=None, metavar="FILE.png", help="output PNG (default: RUN/curves.png)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists (RUN/curves.png is redrawn "
                                                            "without it)")
    s.set_defaults(func=cmd_plot)

    from .config import LabelPaletteName
    from .evaluate import add_threads_argument

    g = sub.add_parser("generate", help="synthesise photos from label maps with a trained or converted generator",
                       formatter_class=_Formatter, parents=[common])
    g.add_argument("--checkpoint", required=True,
                   help="run folder, checkpoint folder, or .safetensors file (ours or converted official)")
    g.add_argument("--labels", required=True, help="a label PNG or a folder of them (cross-view: 6/4-panel files)")
    g.add_argument("--instances", default=None,
                   help="instance PNG or folder, matched by name (models with instance edges; without it the label "
                        "map's own region boundaries are used)")
    g.add_argument("--out", required=True,
                   help="output folder: one PNG per input, named after it (a Cityscapes X_gtFine_labelIds.png gives "
                        "X_leftImg8bit.png, the name of its photo, so `lggan evaluate --generated OUT --real "
                        "PHOTOS` pairs them), written at the generation size")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--size", type=size_arg, default=None, metavar="WxH",
                      help="generate at this size: label (and instance) maps are resized nearest to it (default: "
                           "the model's training size, data.crop_size or data.load_size of its config)")
    size.add_argument("--native", action="store_true",
                      help="generate at each label map's own size (slow and out of distribution when it is far "
                           "from the training size)")
    g.add_argument("--palette", default=None, metavar="NAME|FILE.json",
                   help=f"read colour (RGB) label images through this palette: {', '.join(choices(LabelPaletteName))} (the "
                        "colours lggan draws those datasets in) or a JSON file mapping colours to label ids; an "
                        "unknown colour is an error (default: the config's data.palette; without one, colour label "
                        "images are refused). Cross-view models: the palette of their map panels")
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    g.add_argument("--html", action="store_true",
                   help="also write OUT/index.html: every input's label map (OUT/label_maps/, in its class colours) "
                        "beside what was generated from it")
    g.add_argument("--save-branches", action="store_true",
                   help="also write I^G, I^L and the weight maps W_g, W_l, and in classes/ a grid of the per-class "
                        "images I^l_i of the classes present in each input, each tile captioned with its class name "
                        "(models with the local generator)")
    g.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    g.add_argument("--amp", choices=choices(InferenceAmpMode), default="auto",
                   help="auto: bf16 autocast where the device has it natively (CUDA compute capability >= 8, CPUs "
                        "with AMX-BF16/AVX512-BF16), else fp32; bf16: always (emulated, far slower elsewhere); off: "
                        "fp32. Images are written from float32 either way")
    g.add_argument("--overwrite", action="store_true",
                   help="replace files that already exist in --out (default: refuse, listing them)")
    add_threads_argument(g)
    add_progress_argument(g)
    g.set_defaults(func=cmd_generate)

    from .config import UPSAMPLINGS

    # Spelled out here so that `lggan --help` does not import torch; lggan.convert checks the same values
    # (DATASET_PRESETS: the semantic datasets with a preset; EXPORT_PARTS).
    convert_datasets = [d for d in SEMANTIC_DATASETS if d != "custom"]
    export_parts = ["generator", "generator_ema", "discriminator"]
    c = sub.add_parser("convert-official",
                       help="convert an official LGGAN generator or semantic discriminator checkpoint to ours",
                       formatter_class=_Formatter, parents=[common])
    c.add_argument("input", help="official .pth: a generator ({epoch}_net_G.pth, latest_net_G.pth) or the semantic "
                                 "discriminator ({epoch}_net_D.pth); which one, and the dataset, are detected from its "
                                 "keys and shapes")
    c.add_argument("output", help="output .safetensors (a .json with the model and its config is written beside it, "
                                  "and OUTPUT.unused.safetensors with the checkpoint's unused tensors)")
    c.add_argument("--dataset", choices=convert_datasets, default=None,
                   help="the dataset the checkpoint was trained on (default: detected from the shapes: 36 input "
                        "channels and 35 per-class convs = cityscapes, 151 channels and 52 groups = ade20k)")
    c.add_argument("--num-upsampling-layers", choices=list(UPSAMPLINGS), default=None,
                   help="the global generator's layout, not visible in the weights (default: the dataset's release: "
                        "more for cityscapes, else normal; most when the checkpoint has up_4)")
    c.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT, OUTPUT.json and OUTPUT.unused.safetensors if they exist")
    c.set_defaults(func=cmd_convert)

    x = sub.add_parser("export-official", help="write one of our models as an official LGGAN .pth",
                       formatter_class=_Formatter, parents=[common])
    x.add_argument("ours", help="our .safetensors (converted or from a checkpoint), a checkpoint folder or a run folder "
                                "(its newest checkpoint)")
    x.add_argument("output", help="output .pth: torch.save of a plain dict of tensors under the release's names")
    x.add_argument("--part", choices=export_parts, default="generator",
                   help="which network of a run or checkpoint folder (a .safetensors file says itself)")
    x.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    x.set_defaults(func=cmd_export)

    from .config import ExportFormat

    x = sub.add_parser("export", help="write a generator as TorchScript, ONNX or a torch.export program for inference "
                                      "(class ids in, I^C out)",
                       formatter_class=_Formatter, parents=[common],
                       description="The exported graph takes class ids (label int64 [B,H,W], plus instance ids for\n"
                                   "models with instance edges; cross-view: aerial float [B,6,H,W] and label) and\n"
                                   "returns I^C [B,3,H,W] in [-1,1], float32, traced at one size (the batch is free).\n"
                                   "Its local branch runs the dense per-class path, equal to the sparse one.\n"
                                   "OUTPUT.json (e.g. G.onnx.json) describes the inputs.")
    x.add_argument("checkpoint", help="run folder, checkpoint or generator folder, or .safetensors file")
    x.add_argument("output", help="output file (.pt for TorchScript, .onnx, .pt2 for torch.export); OUTPUT.json is "
                                  "written beside it")
    x.add_argument("--format", choices=choices(ExportFormat), default="torchscript",
                   help="torchscript: torch.jit.trace, load with torch.jit.load (deprecated by torch); onnx: "
                        "torch.onnx.export (needs the onnx package: pip install -e \".[export]\"); export: "
                        "torch.export, load with torch.export.load(PATH).module()")
    x.add_argument("--size", type=size_arg, default=None, metavar="WxH",
                   help="the size the graph runs at (default: the model's training size)")
    x.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    x.add_argument("--overwrite", action="store_true", help="replace OUTPUT and OUTPUT.json if they exist")
    add_threads_argument(x)
    x.set_defaults(func=cmd_export_model)

    from .evaluate import add_evaluate_arguments, add_train_segmenter_arguments

    e = sub.add_parser("evaluate", help="score a model or image folders with the paper's protocols",
                       formatter_class=_Formatter, parents=[common])
    add_evaluate_arguments(e)
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("train-segmenter", help="train the built-in segmenter used for mIoU/accuracy",
                       formatter_class=_Formatter, parents=[common])
    add_train_segmenter_arguments(s)
    s.set_defaults(func=cmd_train_segmenter)

    from .ablation import add_ablation_arguments

    s = sub.add_parser("ablation", help="the paper's ablation (Table 3, right): train S1..S5 with one budget, "
                                        "score them, write study.json/.md and figures",
                       formatter_class=_Formatter, parents=[common])
    add_ablation_arguments(s)
    s.set_defaults(func=cmd_ablation)

    from .demo import add_demo_arguments, demo_cli

    s = sub.add_parser("demo", help="a painting web page: paint or upload a label map, see I^C, I^G, I^L, W_g, W_l "
                                    "and I^l_i (needs pip install -e \".[demo]\")",
                       formatter_class=_Formatter, parents=[common])
    add_demo_arguments(s)
    s.set_defaults(func=demo_cli)
    return p


MAX_ERROR_CHARS = 1000  # an error is one line: longer messages are cut


def _error_message(e: BaseException) -> str:
    """One line naming the file/argument and what is wrong (the library's own errors already read so)."""
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in str(e.args[-1] if e.args else ""):
        what = e.strerror or str(e)
        if getattr(e, "errno", None) == 28:  # ENOSPC
            what += " (disk full)"
        return f"{e.filename}: {what}"
    text = one_line(e, MAX_ERROR_CHARS) if str(e).strip() else ""
    known = (ValueError, OSError, RuntimeError, ArithmeticError, LookupError)
    if isinstance(e, known) and text:
        return text
    return f"{type(e).__name__}: {text or 'no message'} (an unexpected error: rerun with --debug or " \
           f"{DEBUG_ENV}=1 for the traceback, and please report it)"


def _one_line_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"lggan {command}: warning: {text}", file=file or sys.stderr, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by commands that write their command line
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            if not debug:  # one line per warning, like the errors (Python's default adds the source line)
                warnings.showwarning = _one_line_warning(args.command)
            code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (Exception, SystemExit) as e:
        if isinstance(e, SystemExit):
            raise
        if debug:
            traceback.print_exc()
        print(f"lggan {args.command}: error: {_error_message(e)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
