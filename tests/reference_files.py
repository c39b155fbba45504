"""The facts files of the official release in ../shared/reference, which some tests read."""

import os
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def needs_reference_file(path: Path):
    """Skips a test whose reference file is missing, except under CI=true: there a missing file fails the test
    (it reads the file), so CI never passes without the checks it is meant to run."""
    return pytest.mark.skipif(not path.is_file() and os.environ.get("CI") != "true",
                              reason=f"reference file not found at {path} (under CI=true this fails instead)")
