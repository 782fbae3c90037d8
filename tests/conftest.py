"""Shared pytest fixtures."""

from pathlib import Path

import pytest

from rnnstream.embedded.testing import session_broker
from rnnstream.kernels.jit import configure_cache

configure_cache()  # as the command line does: compiled kernels are reused across test runs


@pytest.fixture(scope="session")
def kafka():
    """One real Apache Kafka broker for the whole session (an ``EmbeddedKafka``; use ``.bootstrap``).

    Fails (never skips) the tests that use it when Java 17+ or Maven is missing; see rnnstream.embedded.
    """
    yield from session_broker()


NAB_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "nab"


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The shared NAB subset, ``<repo>/../shared/nab``. Missing data fails, it never skips."""
    if not (NAB_ROOT / "data").is_dir() or not (NAB_ROOT / "labels" / "combined_windows.json").is_file():
        pytest.fail(f"NAB data not found at {NAB_ROOT} (expected data/ and labels/combined_windows.json); "
                    "the shared/ directory must sit beside the repository checkout", pytrace=False)
    return NAB_ROOT


def _legacy_rows(rows, n_features: int, profile_bins: int):
    """``rows`` (scorer statistics, this build's layout) in the layout of the build before the record
    rate and the cross-feature test (PF 21, 4 numbers per feature at the end): what that build's
    checkpoints and changelogs hold."""
    import numpy as np

    from rnnstream.kernels import calibrate as C

    F, pf, qt = n_features, 21, 4
    prof = C.profile_offset(F)
    parts = [rows[:, :C.SC_FEAT]]
    parts += [rows[:, C.SC_FEAT + C.PF * f:C.SC_FEAT + C.PF * f + pf] for f in range(F)]
    parts.append(rows[:, prof:C.sc_size(F, profile_bins) - C.QT_SIZE * F])
    parts += [rows[:, rows.shape[1] - C.QT_SIZE * (F - f):rows.shape[1] - C.QT_SIZE * (F - f) + qt] for f in range(F)]
    return np.concatenate(parts, axis=1)


@pytest.fixture
def legacy_scorer_rows():
    """``f(rows, n_features, profile_bins)``: scorer rows in the previous build's layout."""
    return _legacy_rows

