"""Write detections in NAB's results layout and format score tables.

Result files are ``<out>/<category>/<prefix>_<file>.csv`` with header ``timestamp,value,anomaly_score``
and timestamps as ``YYYY-MM-DD HH:MM:SS`` (the input format), so that
:func:`rnnstream.nab.scorer.read_results_dir` and NAB itself can read them back. Numbers are written
with Python's shortest round-trip repr (re-reading gives the same float64).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rnnstream.nab.dataset import NabDataError
from rnnstream.nab.weights import as_epoch_seconds

PROFILE_COLUMNS = (("standard", "standard"), ("reward_low_FP_rate", "reward low FP"),
                   ("reward_low_FN_rate", "reward low FN"))


def result_path(out: str | Path, prefix: str, key: str) -> Path:
    """``<out>/<category>/<prefix>_<file>.csv`` for key ``"<category>/<file>.csv"``."""
    category, _, name = key.rpartition("/")
    if not category or not name:
        raise NabDataError(f"{key!r}: a NAB key looks like '<category>/<file>.csv'")
    return Path(out) / category / f"{prefix}_{name}"


def format_timestamps(timestamps) -> list[str]:
    """Timestamps (datetime64 / epoch seconds / strings) as ``'YYYY-MM-DD HH:MM:SS'`` strings."""
    secs = as_epoch_seconds(timestamps).astype("datetime64[s]")
    return [s.replace("T", " ") for s in np.datetime_as_string(secs, unit="s").tolist()]


def write_result(out: str | Path, prefix: str, key: str, timestamps, values, scores) -> Path:
    """Write one file's detections; returns the path. Scores must be finite and within [0, 1]."""
    path = result_path(out, prefix, key)
    vals = np.asarray(values, dtype=np.float64).ravel()
    sc = np.asarray(scores, dtype=np.float64).ravel()
    ts = format_timestamps(timestamps)
    if not len(ts) == vals.size == sc.size:
        raise NabDataError(f"{key}: {len(ts)} timestamps, {vals.size} values, {sc.size} scores; must be equal")
    bad = np.flatnonzero(~((sc >= 0.0) & (sc <= 1.0)))
    if bad.size:
        raise NabDataError(f"{key}: anomaly score of row {int(bad[0])} is {sc[bad[0]]}; must be within [0, 1]")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{t},{v!r},{s!r}\n" for t, v, s in zip(ts, vals.tolist(), sc.tolist())]
    with path.open("w", newline="") as fh:
        fh.write("timestamp,value,anomaly_score\n")
        fh.writelines(lines)
    return path


def _score(cell) -> float:
    return float(cell["score"] if isinstance(cell, Mapping) else cell)


def format_table(rows: Mapping[str, Mapping[str, object]], decimals: int = 2) -> str:
    """Markdown table, one row per detector: ``{detector: {profile: score_or_result_dict}}``.

    Accepts :func:`rnnstream.nab.scorer.score_corpus` output directly as a row (its dicts' ``score``
    is used) or plain numbers (e.g. reference/expected_scores.json). A missing profile shows ``-``.
    """
    head = "| detector | " + " | ".join(label for _, label in PROFILE_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(PROFILE_COLUMNS)
    body = []
    for name, prof in rows.items():
        cells = [f"{_score(prof[p]):.{decimals}f}" if p in prof else "-" for p, _ in PROFILE_COLUMNS]
        body.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body]) + "\n"
