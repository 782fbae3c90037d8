"""Score a corpus run: NAB-style normalised scores (every profile) and the operator's figures.

:func:`figures` turns one run's per-stream results into a flat dict of figures; :func:`over_seeds`
gives the mean, min and max of every figure over several runs; :func:`format_report` prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from rnnstream.nab import scorer

from .corpora import Corpus, nab_events, stream_result
from .operator import TOLERANCE_ROWS, Outcome, headline, summarise
from .run import StreamScores

PROFILE_LABELS = {"standard": "NAB standard", "reward_low_FP_rate": "NAB low FP", "reward_low_FN_rate": "NAB low FN"}


def figures(corpus: Corpus, results: Mapping[str, StreamScores], tolerance: int = TOLERANCE_ROWS,
            calibration: bool = False) -> dict:
    """``{"nab": {profile: score_events result}, "operator": summarise(...), "by_stream": {key: Outcome},
    "events": {events key: FileEvents}}`` (events keys: NAB file keys, or ``<key>#<entity>``).
    ``calibration``: the results' ``raw`` are a detector's unsuppressed scores; count them on normal rows."""
    events, per_stream = {}, {}
    total = Outcome()
    for key, res in results.items():
        stream = corpus.load(key)
        events.update(nab_events(corpus, stream, res.score, tolerance))
        o = stream_result(corpus, stream, res.alarm, tolerance, res.raw if calibration else None, res.kind)
        per_stream[key] = o
        total = total + o
    return {"nab": scorer.score_events(events), "operator": summarise(total), "by_stream": per_stream,
            "events": events}


def flat(fig: dict) -> dict[str, float]:
    """The headline numbers of :func:`figures` as ``{name: value}`` (for tables and seed spreads)."""
    op = fig["operator"]
    out = {PROFILE_LABELS[p]: r["score"] for p, r in fig["nab"].items() if p in PROFILE_LABELS}
    out.update(headline(op))
    if len(op["found_pct_by_type"]) > 1:  # NAB's windows have no type
        out.update({f"found % {t}": v for t, v in op["found_pct_by_type"].items()})
    out.update({f"found % [{c}]": v for c, v in op["found_pct_by_category"].items()})
    out.update({f"normal rows scoring >= {lv} /10k (calibrated: {10.0 ** (4 - 10 * lv):g})": v
                for lv, v in op.get("normal_over_per_10k", {}).items()})
    return out


def over_seeds(runs: Sequence[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    """``{name: (mean, min, max)}`` over runs (nan-aware; a figure missing in a run is skipped)."""
    names = list(dict.fromkeys(k for r in runs for k in r))
    out = {}
    for name in names:
        vals = np.array([r.get(name, math.nan) for r in runs], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[name] = (float(vals.mean()), float(vals.min()), float(vals.max())) if vals.size else (math.nan,) * 3
    return out


def _cell(v: tuple[float, float, float], seeds: int) -> str:
    mean, lo, hi = v
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f}" if seeds == 1 or lo == hi else f"{mean:.2f} ({lo:.2f}-{hi:.2f})"


def format_report(rows: Mapping[str, Mapping[str, tuple[float, float, float]]], seeds: Mapping[str, int]) -> str:
    """Markdown table: one column per detector, one row per figure; cells ``mean (min-max)``."""
    names = list(rows)
    figs = list(dict.fromkeys(k for r in rows.values() for k in r))
    head = "| figure | " + " | ".join(f"{n} ({seeds[n]} seed{'s' if seeds[n] != 1 else ''})" for n in names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for f in figs:
        lines.append(f"| {f} | " + " | ".join(_cell(rows[n].get(f, (math.nan,) * 3), seeds[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def stream_line(corpus: Corpus, res: StreamScores, tolerance: int = TOLERANCE_ROWS) -> str:
    """One stream's result as it finishes: rows, anomalies found, false alarms, time."""
    o = stream_result(corpus, corpus.load(res.key), res.alarm, tolerance)
    found = sum(w.found for w in o.windows)
    return (f"  {res.key}: {res.score.size} rows, found {found}/{len(o.windows)}, "
            f"{o.false_alarms} false alarms, {res.seconds:.1f}s")
