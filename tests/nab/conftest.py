"""Locate the shared NAB subset: ``<repo>/../shared/nab``. Missing data fails, it never skips."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NAB_ROOT = REPO_ROOT.parent / "shared" / "nab"


@pytest.fixture(scope="session")
def nab_root() -> Path:
    if not (NAB_ROOT / "data").is_dir() or not (NAB_ROOT / "labels" / "combined_windows.json").is_file():
        pytest.fail(f"NAB data not found at {NAB_ROOT} (expected data/ and labels/combined_windows.json); "
                    "the shared/ directory must sit beside the repository checkout", pytrace=False)
    return NAB_ROOT
