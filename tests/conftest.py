"""Shared pytest setup: CPU-only, one intra-op thread, and the opt-in `slow` marker."""

import pytest
import torch

# Multi-threaded CPU kernels may sum in a different order from run to run; one thread makes every test bitwise
# reproducible (the resume test compares two runs exactly) and is as fast for the tiny models used here.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic_seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def semantic_model(tmp_path_factory):
    """A tiny random synth-preset generator file (tests/tiny.py)."""
    from tiny import SEMANTIC, model_file

    return model_file(tmp_path_factory.mktemp("model"), "synth", SEMANTIC)


@pytest.fixture(scope="module")
def crossview_model(tmp_path_factory):
    """A tiny random synth-views generator file (tests/tiny.py)."""
    from tiny import CROSSVIEW, model_file

    return model_file(tmp_path_factory.mktemp("model"), "synth-views", CROSSVIEW)
