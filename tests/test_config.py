import json

import pytest

from lggan.config import PRESETS, Config, apply_overrides, get_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_round_trips_through_json(name, tmp_path):
    cfg = get_preset(name)
    cfg.save_json(tmp_path / "c.json")
    assert Config.load_json(tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["preset"] == name


def test_dataset_presets_follow_the_released_scripts():
    city = get_preset("cityscapes")
    assert (city.data.num_classes, city.data.semantic_nc, city.data.load_size) == (35, 36, (512, 256))
    assert (city.model.num_upsampling_layers, city.model.local_groups, city.train.batch_size) == ("more", None, 8)
    ade = get_preset("ade20k")
    assert (ade.data.num_classes, ade.data.semantic_nc) == (151, 151)
    assert (ade.data.load_size, ade.data.crop_size, ade.data.flip) == ((286, 286), (256, 256), True)
    assert (ade.model.num_upsampling_layers, ade.model.local_groups, ade.train.batch_size) == ("normal", 52, 24)
    assert get_preset("coco-stuff").data.semantic_nc == 184
    for cfg in (city, ade):
        t = cfg.train
        # TTUR as S/train_*.sh runs it: G 1e-4, D 4e-4, betas (0, 0.9); per-epoch decay; G step first.
        assert (t.recipe, t.lr_g, t.lr_d, t.beta1, t.beta2) == ("release", 1e-4, 4e-4, 0.0, 0.9)
        assert (t.epochs_const, t.epochs_decay, t.lr_schedule, t.step_order) == (100, 100, "spade", "g_then_d")
        lc = cfg.loss
        assert (lc.gan_mode, lc.feat_match, lc.vgg, lc.vgg_input) == ("hinge", 10, 10, "raw")
        assert (lc.image_l1, lc.local_l1, lc.class_ce) == (0, 1, 1)
        assert (cfg.model.ngf, cfg.model.init, cfg.model.init_gain, cfg.model.discriminator) == (64, "xavier", 0.02,
                                                                                              "spade")
    runs = {"dayton-a2g": (256, 286, 4, (20, 15), "a2g"), "dayton-g2a": (256, 286, 4, (20, 15), "g2a"),
            "dayton-a2g-64": (64, 72, 16, (50, 50), "a2g"), "dayton-g2a-64": (64, 72, 16, (50, 50), "g2a"),
            "cvusa": (256, 286, 4, (15, 15), "a2g")}
    for name, (fine, load, batch, epochs, direction) in runs.items():
        cfg = get_preset(name)
        t, lc, mc = cfg.train, cfg.loss, cfg.model
        assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.direction) == ((load, load), (fine, fine), direction)
        assert (t.batch_size, (t.epochs_const, t.epochs_decay)) == (batch, epochs), name
        assert (t.lr_g, t.lr_d, t.beta1, t.beta2, t.lr_schedule, t.step_order) == (2e-4, 2e-4, 0.5, 0.999, "pix2pix",
                                                                                   "one_forward")
        assert (lc.gan_mode, lc.local_l1, lc.image_l1, lc.vgg, lc.tv, lc.tv_reduction) == ("vanilla", 100, 100, 10,
                                                                                          1e-6, "sum")
        assert (mc.discriminator, mc.num_d, mc.d_layers, mc.init) == ("pix2pix", 1, 3, "normal")


def test_a_named_recipe_fills_its_fields_and_a_changed_field_makes_it_custom():
    paper = apply_overrides(get_preset("cityscapes"), ["train.recipe=paper"])
    assert (paper.train.recipe, paper.train.lr_g, paper.train.lr_d, paper.train.beta2) == ("paper", 2e-4, 2e-4, 0.999)
    tuned = apply_overrides(get_preset("cityscapes"), ["train.recipe=paper", "train.lr_d=1e-3"])
    assert (tuned.train.recipe, tuned.train.lr_g, tuned.train.lr_d) == ("custom", 2e-4, 1e-3)
    with pytest.raises(ValueError, match="train.recipe=best: must be one of"):
        apply_overrides(get_preset("cityscapes"), ["train.recipe=best"])


def test_a_config_json_of_lggan_0_1_translates_lr_and_ttur():
    old = get_preset("synth").to_dict()
    for key in ("lr_g", "lr_d", "recipe", "lr_schedule", "step_order"):
        del old["train"][key]
    cfg = Config.from_dict({**old, "train": {**old["train"], "lr": 2e-4, "ttur": True}})
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.beta2) == (1e-4, 4e-4, 0.9)


def test_ablation_presets_switch_the_components_of_table_3():
    s = {n: get_preset(n) for n in ("S1", "S2", "S3", "S4", "S5")}
    assert not s["S1"].model.use_local
    assert s["S2"].model.use_local and s["S2"].model.local_combine == "sum"
    assert s["S3"].model.local_combine == "conv" and s["S3"].loss.class_ce == 0
    assert s["S4"].loss.class_ce > 0 and not s["S4"].model.use_weight_map
    assert s["S5"].model.use_weight_map and s["S5"].loss.class_ce > 0


def test_overrides_are_typed_and_validated():
    cfg = apply_overrides(get_preset("synth"), ["train.batch_size=8", "data.load_size=256x128",
                                                  "train.iterations=None", "model.use_local=false",
                                                  "train.lr_g=1e-3"])
    assert cfg.train.batch_size == 8 and cfg.data.load_size == (256, 128)
    assert cfg.train.iterations is None and cfg.model.use_local is False and cfg.train.lr_g == 1e-3
    # A fresh preset is untouched by earlier overrides.
    assert get_preset("synth").train.batch_size == 4
    with pytest.raises(ValueError, match="unknown field 'train.batchsize'"):
        apply_overrides(cfg, ["train.batchsize=2"])
    with pytest.raises(ValueError, match="train.batch_size=two: must be an integer"):
        apply_overrides(cfg, ["train.batch_size=two"])
    with pytest.raises(ValueError, match="model.local_combine=max: must be one of sum, conv"):
        apply_overrides(cfg, ["model.local_combine=max"])
    with pytest.raises(ValueError, match="divisible by 32"):
        apply_overrides(cfg, ["data.load_size=100x64"])
    with pytest.raises(ValueError, match="expected section.field=value"):
        apply_overrides(cfg, ["train.batch_size"])
    with pytest.raises(ValueError, match="does not fit model.task"):
        apply_overrides(cfg, ["data.dataset=synth-views"])


def test_semantic_nc_counts_the_instance_edge_channel():
    cfg = apply_overrides(get_preset("synth"), ["data.num_classes=7", "data.use_instance=false"])
    assert cfg.data.semantic_nc == 7
    cfg = apply_overrides(cfg, ["data.use_instance=true"])
    assert cfg.data.semantic_nc == 8


def test_every_allowed_value_is_declared_once_and_read_everywhere():
    import argparse

    from lggan import config as C
    from lggan import data
    from lggan.cli import build_parser

    # Each semantic dataset of the config has a reader, and the readers serve no other name.
    assert set(data.DATASET_NAMES) == set(C.SEMANTIC_DATASETS) == {*data.SEMANTIC_DATASETS, data.SYNTH_CITY}
    assert set(C.DATASET_TASK) == set(C.SEMANTIC_DATASETS) | set(C.CROSSVIEW_DATASETS)
    # The CLI's choices are the config's.
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_preset = next(a for a in sub.choices["train"]._actions if a.dest == "preset")
    assert list(train_preset.choices) == list(C.PRESETS)
    seg = next(a for a in sub.choices["train-segmenter"]._actions if a.dest == "dataset")
    assert tuple(seg.choices) == C.SEMANTIC_DATASETS
    # A value outside a Literal field's choices is refused by --set and by a loaded config alike.
    with pytest.raises(ValueError, match=r"model.local_combine=max: must be one of sum, conv"):
        C.apply_overrides(C.get_preset("synth"), ["model.local_combine=max"])
    bad = C.get_preset("synth").to_dict()
    bad["train"]["amp"] = "fp8"
    with pytest.raises(ValueError, match=r"train.amp=fp8: must be one of auto, bf16, fp16, off"):
        C.Config.from_dict(bad)


def test_a_field_of_the_other_task_is_refused_not_ignored():
    with pytest.raises(ValueError, match="model.discriminator='pix2pix' does not apply to model.task='semantic'"):
        apply_overrides(get_preset("synth"), ["model.discriminator=pix2pix"])
    with pytest.raises(ValueError, match="model.local_groups=3 does not apply to model.task='crossview'"):
        apply_overrides(get_preset("synth-views"), ["model.local_groups=3"])
    with pytest.raises(ValueError, match="loss.class_ce=1.0 does not apply"):
        apply_overrides(get_preset("synth-views"), ["loss.class_ce=1"])


# -- declared ranges: every numeric field, every bad value, one message form ------------------------------------------

def _numeric_fields() -> list[tuple[str, type, object]]:
    """(section.field, its number type, its declared Range) of every int/float field of the config (tuples: per value)."""
    import dataclasses
    import typing

    from lggan.config import field_range

    out = []
    for section in ("data", "model", "loss", "train"):
        cls = type(getattr(Config(), section))
        for name, tp in typing.get_type_hints(cls, include_extras=True).items():
            bare = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
            kinds = {a for a in typing.get_args(bare) or (bare,) for a in (typing.get_args(a) or (a,))}
            number = next((k for k in (float, int) if k in kinds), None)
            if number is not None:
                out.append((f"{section}.{name}", number, field_range(tp)))
        assert dataclasses.is_dataclass(cls)
    return out


NUMERIC_FIELDS = _numeric_fields()
SIZE_FIELDS = ("data.load_size", "data.crop_size")  # WIDTHxHEIGHT values


def test_every_numeric_field_declares_its_range():
    assert len(NUMERIC_FIELDS) > 30  # the walk found the fields (lr_g, loss weights, sizes, intervals, ...)
    assert [name for name, _, allowed in NUMERIC_FIELDS if allowed is None] == []


def _bad_values(number: type, allowed) -> list[str]:
    """Values outside `allowed`: never finite ones for floats; the first integer below the bound for ints."""
    if number is float:
        bad = ["nan", "inf", "-inf"]
        if allowed.ge is not None:
            bad.append(str(allowed.ge - 1e-3))
        if allowed.gt is not None:
            bad.append(str(allowed.gt))
        if allowed.lt is not None:
            bad.append(str(allowed.lt))
        return bad
    low = allowed.ge if allowed.ge is not None else allowed.gt
    return ["inf", "nan", str(int(low) - 1)]


CASES = [(name, value) for name, number, allowed in NUMERIC_FIELDS for value in _bad_values(number, allowed)]


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_a_value_outside_its_range_is_refused_naming_the_field(name, value):
    cfg = get_preset("cityscapes" if not name.startswith("data.dontcare") else "custom")
    if name == "data.dontcare":
        cfg = apply_overrides(cfg, ["data.num_classes=5"])
    setting = f"{name}={value}x{value}" if name in SIZE_FIELDS else f"{name}={value}"
    with pytest.raises(ValueError) as e:
        apply_overrides(cfg, [setting])
    message = str(e.value)
    assert message.startswith(f"{name}=") and ": must be " in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name,number,allowed", NUMERIC_FIELDS, ids=[n for n, _, _ in NUMERIC_FIELDS])
def test_the_bounds_themselves_are_accepted_where_closed(name, number, allowed):
    # The range is what is enforced, no tighter: a closed bound (>= ge) is a valid value.
    if allowed.ge is None or name in ("data.num_classes", "model.local_groups"):
        return  # num_classes / local_groups at their bounds are checked in test_validation_of_bounds below
    cfg = get_preset("cityscapes")
    value = int(allowed.ge) if number is int else allowed.ge
    setting = f"{name}={value}x{value}" if name in SIZE_FIELDS else f"{name}={value}"
    if name in ("data.load_size", "data.crop_size"):
        return  # a 1x1 map does not fit the 'more' layout's divisibility; the range itself is covered above
    extra = ["train.eval_segmenter=s.safetensors"] if name == "train.eval_every" else []
    apply_overrides(cfg, [setting, *extra])


def test_config_json_is_strict_json_and_never_written_with_nan(tmp_path):
    cfg = get_preset("synth")
    cfg.train.lr_g = float("nan")  # what validation refuses; save_json must not write it either
    path = tmp_path / "config.json"
    path.write_text("{}\n")
    with pytest.raises(ValueError):
        cfg.save_json(path)
    assert path.read_text() == "{}\n"  # the old file is intact, no temp file left
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_cli_refuses_a_non_finite_value_before_any_work(tmp_path, monkeypatch, capsys):
    from lggan.cli import main

    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--out", str(tmp_path / "run"), "--set", "train.lr_d=inf"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lggan train: error: train.lr_d=inf: must be a finite number > 0"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()  # no folder, no synthetic city
