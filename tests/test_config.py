import json

import pytest

from lggan.config import PRESETS, Config, apply_overrides, get_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_round_trips_through_json(name, tmp_path):
    cfg = get_preset(name)
    cfg.save_json(tmp_path / "c.json")
    assert Config.load_json(tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["preset"] == name


def test_official_presets_match_the_paper_settings():
    city = get_preset("cityscapes")
    assert (city.data.num_classes, city.data.semantic_nc, city.data.load_size) == (35, 36, (512, 256))
    ade = get_preset("ade20k")
    assert (ade.data.num_classes, ade.data.semantic_nc, ade.data.load_size) == (151, 151, (256, 256))
    coco = get_preset("coco-stuff")
    assert coco.data.semantic_nc == 184
    for cfg in (city, ade, coco):
        assert (cfg.model.ngf, cfg.train.beta1, cfg.train.beta2, cfg.train.lr) == (64, 0.0, 0.999, 2e-4)
        assert (cfg.train.epochs_const, cfg.train.epochs_decay) == (100, 100)
        assert cfg.loss.gan_mode == "hinge" and cfg.loss.feat_match == 10 and cfg.loss.vgg == 10
    dayton = get_preset("dayton-a2g")
    assert dayton.model.task == "crossview" and dayton.loss.gan_mode == "vanilla"
    assert (dayton.data.load_size, dayton.data.crop_size) == ((286, 286), (256, 256))
    assert get_preset("dayton-a2g-64").data.load_size == (72, 72)
    assert get_preset("dayton-g2a").data.direction == "g2a"
    assert (dayton.train.beta1, dayton.train.batch_size, dayton.loss.local_l1, dayton.loss.tv) == (0.5, 4, 100, 1e-6)


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
                                                  "train.lr=1e-3"])
    assert cfg.train.batch_size == 8 and cfg.data.load_size == (256, 128)
    assert cfg.train.iterations is None and cfg.model.use_local is False and cfg.train.lr == 1e-3
    # A fresh preset is untouched by earlier overrides.
    assert get_preset("synth").train.batch_size == 4
    with pytest.raises(ValueError, match="unknown field 'train.batchsize'"):
        apply_overrides(cfg, ["train.batchsize=2"])
    with pytest.raises(ValueError, match="train.batch_size: expected an integer"):
        apply_overrides(cfg, ["train.batch_size=two"])
    with pytest.raises(ValueError, match="model.local_combine='max'"):
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
    with pytest.raises(ValueError, match=r"model.local_combine='max': expected one of sum, conv"):
        C.apply_overrides(C.get_preset("synth"), ["model.local_combine=max"])
    bad = C.get_preset("synth").to_dict()
    bad["train"]["amp"] = "fp8"
    with pytest.raises(ValueError, match=r"train.amp='fp8': expected one of auto, bf16, fp16, off"):
        C.Config.from_dict(bad)
