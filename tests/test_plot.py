"""rnnstream.plot: blame marks, the time window, the PNG."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.errors import RnnstreamError
from rnnstream.plot import BLAME_Z, Series, blame_from_z, plot_series


def test_blame_marks_the_features_that_deviate_or_the_largest():
    z = np.array([[0.1, 5.0, -4.0, 0.2],     # two features over BLAME_Z
                  [0.5, -1.0, 0.2, 0.1],     # none over: the largest |z|
                  [np.nan, 0.0, 0.0, 9.0]])
    assert blame_from_z(z).tolist() == [[False, True, True, False], [False, True, False, False],
                                        [False, False, False, True]]
    assert BLAME_Z == 3.0


def test_anomalies_are_marked_only_on_blamed_features():
    n = 5
    s = Series.of("e", np.arange(n) * 60.0, np.ones((n, 2)), np.ones((n, 2)), np.zeros(n),
                  [False, False, True, False, True], z=[[0, 0], [0, 0], [6, 0], [0, 0], [0, -7]])
    assert s.culprits().tolist() == [[False, False]] * 2 + [[True, False], [False, False], [False, True]]
    blamed = Series.of("e", np.arange(n) * 60.0, np.ones((n, 2)), np.ones((n, 2)), np.zeros(n),
                       [True] * n, blame=np.eye(n, 2, dtype=bool))
    assert blamed.culprits().tolist() == np.eye(n, 2, dtype=bool).tolist()


def test_plot_series_writes_a_png_and_refuses_an_empty_window(tmp_path):
    n = 200
    t = 1.7e9 + 60.0 * np.arange(n)
    x = np.sin(np.arange(n) / 10)[:, None]
    anomaly = np.zeros(n, dtype=bool)
    anomaly[150] = True
    suppressed = np.zeros(n, dtype=bool)
    suppressed[160] = True
    s = Series.of("web-1", t, x, x * 0.9, np.linspace(0, 1, n), anomaly, suppressed, z=np.zeros((n, 1)))
    out = plot_series(s, ["cpu"], tmp_path / "p.png", threshold=0.5, start=t[100], end=t[199])
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(RnnstreamError, match="no events to plot"):
        plot_series(s, ["cpu"], tmp_path / "q.png", start=t[-1] + 1)
