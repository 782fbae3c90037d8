"""The z-score baseline at the threshold where it finds as many anomalies as a detector.

The issue's target compares false alarms "with a rolling z-score baseline that finds as many". The
share found falls as the z threshold rises, so the highest threshold that still finds at least the
target share is found by bisection on ``|z|`` (30 halvings between 0 and the largest ``|z|``). The
baseline's scores are computed once (cached); only the alarms change with the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import zscore
from .corpora import Corpus, stream_result
from .operator import Outcome, headline, summarise
from .run import Spec, run_corpus


def _at(corpus: Corpus, streams: dict, results, threshold: float, tolerance: int) -> dict:
    total = Outcome()
    for key, r in results.items():
        total = total + stream_result(corpus, streams[key], r.raw >= threshold, tolerance)
    return summarise(total)


def zscore_at_recall(corpus: Corpus, target_pct: float, window: int, tolerance: int,
                     workers: int | None = None, cache: str | Path | None = None) -> dict[str, float]:
    """Figures of the z-score baseline at the highest threshold finding >= ``target_pct`` % anomalies."""
    results = run_corpus(Spec(zscore=zscore.ZScoreParams(window=window)), corpus, workers, cache)
    top = max(float(r.raw.max()) for r in results.values() if r.raw.size) + 1.0
    streams = {k: corpus.load(k) for k in results}
    lo, hi = 0.0, top                      # found(lo) >= target (every row alarms); found(hi) = 0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if _at(corpus, streams, results, mid, tolerance)["found_pct"] >= target_pct:
            lo = mid
        else:
            hi = mid
    op = _at(corpus, streams, results, lo, tolerance)
    return {"z threshold": lo, **headline(op)}
