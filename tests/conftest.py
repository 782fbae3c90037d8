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


def _legacy_rows(rows, n_features: int, profile_bins: int, layout: int = 1):
    """``rows`` (scorer statistics, this build's layout) in the earlier scorer ``layout`` (a key of
    ``calibrate.LAYOUTS``: its numbers per feature, its numbers per feature at the end, its profile
    means per word): what that build's checkpoints and changelogs hold."""
    import numpy as np

    from rnnstream.kernels import calibrate as C

    pf, qt, per_word = C.LAYOUTS[layout]
    F = n_features
    prof = C.profile_offset(F)
    words = C.profile_means_size(F, profile_bins)
    parts = [rows[:, :C.SC_FEAT]]
    parts += [rows[:, C.SC_FEAT + C.PF * f:C.SC_FEAT + C.PF * f + pf] for f in range(F)]
    means = np.ascontiguousarray(rows[:, prof:prof + words]).view(np.float32)[:, :profile_bins * F]
    if per_word == 1:
        parts.append(means.astype(np.float64))   # those builds kept the means as float64
    else:
        parts.append(rows[:, prof:prof + words])
    parts.append(rows[:, prof + words:C.sc_size(F, profile_bins) - (C.QT_SIZE * F + C.cov_size(F) if F > 1 else 0)])
    if F > 1:   # layout 5's level test regressed on the others' mean: two numbers after its count, gone since
        for f in range(F):
            q = C.quiet_offset(rows.shape[1], F, f)
            block = rows[:, q:q + C.QT_SIZE]
            if qt > C.QT_SIZE:
                block = np.concatenate([block[:, :C.LV_N + 1], np.full((len(rows), qt - C.QT_SIZE), 0.5),
                                        block[:, C.LV_N + 1:]], axis=1)
            parts.append(block[:, :qt])
    return np.concatenate(parts, axis=1)


@pytest.fixture
def legacy_scorer_rows():
    """``f(rows, n_features, profile_bins, layout=1)``: scorer rows in an earlier build's layout."""
    return _legacy_rows

