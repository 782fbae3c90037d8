"""What an operator lives with, at a detector's own threshold: anomalies found, delay, false alarms.

Inputs per stream: each row's entity, timestamp and *alarm* (the published anomaly flag, or for a
baseline its own threshold crossing), and the labelled windows. Rules (the README's "Evaluation"):

- Each entity is its own sub-series. Its first ``probation_length(n)`` rows (NAB's probation: 15%,
  at most 750) count for nothing: neither alarms nor events; a window starting inside it is not scored.
- A window covers the entity's rows from the first at or after ``start`` to the last at or before
  ``end``, extended by ``tolerance`` more rows of that entity (a detector may need a row or two to
  be sure; a spike is one row wide).
- A window is *found* when an alarm falls inside its extended span. Its delay is the rows (and
  seconds) from the window's first row to the first such alarm.
- A *false alarm* is an alarm outside every extended window. Rates are per 10,000 scored rows.
- ``alarms_per_true`` is all alarms divided by alarms inside windows (1.0 = every alarm was true).
- *Found by chance*: per window, the probability that the entity's own scored alarms, rotated by an
  offset drawn uniformly from its scored rows (count and spacing kept, places forgotten), put one
  inside the window's extended span; exact, no sampling. Long windows and frequent alarms find
  anomalies by chance alone: ``found_pct`` means detection only as far as it exceeds this share.
- *Found by an alarm blaming a labelled feature* (a detector's alarms, windows that name their
  features): an alarm inside the extended span blames (gives a kind to) one of the window's features.
- *Calibration* (a detector's scores only): per 10,000 scored rows outside every extended window, the
  rows whose unsuppressed score reaches each of ``CALIBRATION_LEVELS``. A score ``L`` is a p-value of
  ``10^(-10 L)``, so calibrated p-values give ``10^(4 - 10 L)`` (10, 0.1 and 0.001 per 10k); the
  labels are incomplete (an anomaly's aftermath is not labelled), so this is an upper bound of the
  excess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnstream.nab.weights import probation_length

TOLERANCE_ROWS = 10
FOUND_BY_CHANCE = "found % by chance (the same alarms, rotated)"   # its name in the reports
FOUND_BLAMED = "found % by an alarm blaming a labelled feature"
CALIBRATION_LEVELS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class WindowSpan:
    """A labelled window mapped to rows of its entity (indices into the entity's own rows)."""

    entity: int
    first: int          # first row of the window
    last: int           # last row, tolerance included
    type: str
    features: tuple[int, ...] = ()   # column indices of the labelled features (empty: not known)


@dataclass
class WindowOutcome:
    type: str
    category: str
    found: bool
    delay_rows: float    # nan when not found
    delay_seconds: float
    chance: float = 0.0  # probability that the entity's alarms at a random rotation find it
    blamed: bool | None = None  # an alarm inside blames a labelled feature (None: blame not known)


@dataclass
class Outcome:
    """Counts of one stream (or, summed with ``+``, of many)."""

    windows: list[WindowOutcome] = field(default_factory=list)
    rows: int = 0
    alarms: int = 0
    false_alarms: int = 0
    normal_rows: int = 0                  # scored rows outside every extended window (with scores given)
    normal_over: tuple[int, ...] = ()     # of those, rows scoring >= each of CALIBRATION_LEVELS

    def __add__(self, other: "Outcome") -> "Outcome":
        over = tuple(a + b for a, b in zip(self.normal_over, other.normal_over)) or self.normal_over or other.normal_over
        return Outcome(self.windows + other.windows, self.rows + other.rows, self.alarms + other.alarms,
                       self.false_alarms + other.false_alarms, self.normal_rows + other.normal_rows, over)


def entity_rows(entity: np.ndarray) -> dict[int, np.ndarray]:
    """Entity code -> its row indices in arrival order."""
    order = np.argsort(entity, kind="stable")
    codes, starts = np.unique(entity[order], return_index=True)
    return {int(c): rows for c, rows in zip(codes, np.split(order, starts[1:]))}


def spans(entity_ts: np.ndarray, code: int, windows: Iterable[tuple], tolerance: int) -> list[WindowSpan]:
    """Map ``(start, end, type[, feature columns])`` windows (epoch seconds) to rows of one entity's
    timestamps."""
    out = []
    n = entity_ts.size
    for w in windows:
        start, end, kind = w[:3]
        first = int(np.searchsorted(entity_ts, start, side="left"))
        last = int(np.searchsorted(entity_ts, end, side="right")) - 1
        if first > last:
            continue  # no row of the entity inside the window (it fell in a gap)
        out.append(WindowSpan(code, first, min(last + tolerance, n - 1), kind, tuple(w[3]) if len(w) > 3 else ()))
    return out


def found_by_chance(alarms: np.ndarray, rows: int, first: int, last: int) -> float:
    """Probability that ``alarms`` (sorted distinct positions in ``0..rows-1``) rotated by an offset
    uniform in ``0..rows-1`` (modulo ``rows``) put at least one inside ``first..last``.

    The offsets that move alarm ``q`` into the span form the circular interval ``first - q ..
    last - q``; the answer is the share of offsets covered by the union of these intervals.
    """
    width = last - first + 1
    if alarms.size == 0 or rows <= 0:
        return 0.0
    if width >= rows:
        return 1.0
    starts = np.sort((first - np.asarray(alarms, dtype=np.int64)) % rows)
    # on the circle, the gap after each interval's start up to the next start is covered for `width` of it
    gaps = np.diff(np.concatenate((starts, starts[:1] + rows)))
    return float(np.minimum(gaps, width).sum()) / rows


def stream_outcome(entity: np.ndarray, timestamps: np.ndarray, alarm: np.ndarray,
                   windows: dict[int, Sequence[tuple]], category: str,
                   tolerance: int = TOLERANCE_ROWS, score: np.ndarray | None = None,
                   kind: np.ndarray | None = None) -> Outcome:
    """Operator counts of one stream. ``windows``: entity code -> [(start, end, type[, feature
    columns])] in epoch seconds. ``score``: each row's unsuppressed score, for the calibration counts
    (None: not counted). ``kind``: each row's blamed kind per feature (rows x features, 0 = not
    blamed), for the windows found by an alarm that blames one of their labelled features (None, or a
    window without labelled features: not counted)."""
    out = Outcome(normal_over=(0,) * len(CALIBRATION_LEVELS) if score is not None else ())
    for code, rows in entity_rows(np.asarray(entity)).items():
        ts = np.asarray(timestamps)[rows].astype(np.int64)
        al = np.asarray(alarm)[rows].astype(bool)
        n = rows.size
        first_scored = probation_length(n)
        inside = np.zeros(n, dtype=bool)
        scored_alarms = np.flatnonzero(al[first_scored:])
        for sp in spans(ts, code, windows.get(code, ()), tolerance):
            inside[sp.first:sp.last + 1] = True
            if sp.first < first_scored:
                continue
            chance = found_by_chance(scored_alarms, n - first_scored, sp.first - first_scored, sp.last - first_scored)
            hits = np.flatnonzero(al[sp.first:sp.last + 1])
            blamed = None
            if kind is not None and sp.features:
                blamed = bool(hits.size) and bool(np.any(kind[rows[sp.first + hits]][:, list(sp.features)]))
            if hits.size:
                k = int(hits[0])
                out.windows.append(WindowOutcome(sp.type, category, True, float(k),
                                                 float(ts[sp.first + k] - ts[sp.first]), chance, blamed))
            else:
                out.windows.append(WindowOutcome(sp.type, category, False, np.nan, np.nan, chance, blamed))
        scored = np.arange(n) >= first_scored
        out.rows += int(scored.sum())
        out.alarms += int((al & scored).sum())
        out.false_alarms += int((al & scored & ~inside).sum())
        if score is not None:
            normal = np.asarray(score)[rows][scored & ~inside]
            out.normal_rows += int(normal.size)
            out.normal_over = tuple(c + int(np.count_nonzero(normal >= lv))
                                    for c, lv in zip(out.normal_over, CALIBRATION_LEVELS))
    return out


def _share(ws: list[WindowOutcome]) -> float:
    return 100.0 * sum(w.found for w in ws) / len(ws) if ws else float("nan")


def summarise(outcome: Outcome) -> dict:
    """Flat figures: found %, per type and category, median delays, false alarms per 10k rows, ratio."""
    ws = outcome.windows
    found = [w for w in ws if w.found]
    in_windows = outcome.alarms - outcome.false_alarms
    known = [w for w in ws if w.blamed is not None]
    by_type, by_cat = defaultdict(list), defaultdict(list)
    for w in ws:
        by_type[w.type].append(w)
        by_cat[w.category].append(w)
    return {
        "anomalies": len(ws),
        "found_pct": _share(ws),
        "found_by_chance_pct": 100.0 * float(np.mean([w.chance for w in ws])) if ws else float("nan"),
        "found_blamed_pct": 100.0 * float(np.mean([w.blamed for w in known])) if known else float("nan"),
        "delay_rows": float(np.median([w.delay_rows for w in found])) if found else float("nan"),
        "delay_seconds": float(np.median([w.delay_seconds for w in found])) if found else float("nan"),
        "rows": outcome.rows,
        "alarms": outcome.alarms,
        "false_alarms": outcome.false_alarms,
        "fa_per_10k": 1e4 * outcome.false_alarms / outcome.rows if outcome.rows else float("nan"),
        "alarms_per_true": outcome.alarms / in_windows if in_windows else float("nan"),
        "found_pct_by_type": {t: _share(v) for t, v in sorted(by_type.items())},
        "found_pct_by_category": {c: _share(v) for c, v in sorted(by_cat.items())},
        "normal_over_per_10k": ({lv: 1e4 * c / outcome.normal_rows for lv, c in zip(CALIBRATION_LEVELS, outcome.normal_over)}
                                if outcome.normal_over and outcome.normal_rows else {}),
    }


def headline(op: dict) -> dict[str, float]:
    """The operator's figures of a :func:`summarise` result under their names in the reports (the
    blamed share only where it is known)."""
    out = {"found %": op["found_pct"], FOUND_BY_CHANCE: op["found_by_chance_pct"]}
    if not np.isnan(op["found_blamed_pct"]):
        out[FOUND_BLAMED] = op["found_blamed_pct"]
    out.update({"median delay (rows)": op["delay_rows"], "median delay (s)": op["delay_seconds"],
                "false alarms /10k": op["fa_per_10k"], "alarms per true alarm": op["alarms_per_true"]})
    return out
