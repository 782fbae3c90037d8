"""Leave-one-category-out (LOCO): each category scored with settings chosen without it.

Every candidate of a small grid (dotted overrides of one base configuration) runs once on every
stream; the NAB threshold events of each stream are kept. For each category C in turn:

1. on the streams of every *other* category, each candidate's NAB standard score is optimised over
   the threshold (exactly as NAB does); the best candidate wins (on a tie, the earlier in the grid),
   together with its optimal threshold;
2. the streams of C are scored with that candidate *at that threshold* (no optimisation on C).

The LOCO figure sums the held-out raw scores of all categories and normalises them over all
windows, so it is comparable with the ordinary (in-sample) NAB figure. The operator figures of a
held-out category are those of its chosen candidate at the candidate's own alarm threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnnstream.errors import RnnstreamError
from rnnstream.nab import scorer
from rnnstream.nab.dataset import read_parsed

PROFILE = "standard"


@dataclass
class HeldOut:
    category: str
    chosen: str
    threshold: float
    train_score: float        # the chosen candidate's score on the other categories
    score: float              # the held-out category, scored with it at that threshold
    raw: float
    null: float
    perfect: float


def load_grid(path: str | Path) -> dict[str, dict[str, Any]]:
    """``candidates: {name: {dotted.path: value}}`` from a YAML file (order kept)."""
    path = Path(path)
    raw = read_parsed(path, yaml.safe_load, "YAML", (yaml.YAMLError,), RnnstreamError)
    cands = raw.get("candidates") if isinstance(raw, dict) else None
    if not isinstance(cands, dict) or not cands:
        raise RnnstreamError(f"{path}: candidates: expected a mapping of name -> {{setting.path: value}}")
    for name, over in cands.items():
        if not isinstance(over, dict) and over is not None:
            raise RnnstreamError(f"{path}: candidates.{name}: expected a mapping of setting paths to values")
    return {str(n): dict(o or {}) for n, o in cands.items()}


def category_of(name: str) -> str:
    """Category of an events key: ``cat/file.csv`` or ``cat/file.csv#entity``."""
    return name.split("/", 1)[0]


def leave_one_out(events: Mapping[str, Mapping[str, scorer.FileEvents]], profile: str = PROFILE) -> list[HeldOut]:
    """``events``: candidate -> {events key -> FileEvents}, every candidate over the same keys."""
    names = list(events)
    keys = list(next(iter(events.values())))
    categories = sorted({category_of(k) for k in keys})
    if len(categories) < 2:
        raise RnnstreamError("leave-one-category-out needs at least two categories")
    out = []
    for held in categories:
        best: tuple[float, str, float] | None = None
        for cand in names:
            train = {k: e for k, e in events[cand].items() if category_of(k) != held}
            r = scorer.score_events(train, {profile: scorer.PROFILES[profile]})[profile]
            if best is None or r["score"] > best[0]:
                best = (r["score"], cand, r["threshold"])
        score, cand, thr = best
        test = {k: e for k, e in events[cand].items() if category_of(k) == held}
        r = scorer.score_at_threshold(test, thr, {profile: scorer.PROFILES[profile]})[profile]
        out.append(HeldOut(held, cand, thr, score, r["score"], r["raw"], r["null"], r["perfect"]))
    return out


def overall(held: Sequence[HeldOut]) -> float:
    """The LOCO figure: held-out raw scores summed, normalised over all windows."""
    raw = sum(h.raw for h in held)
    null = sum(h.null for h in held)
    perfect = sum(h.perfect for h in held)
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


def format_loco(held: Sequence[HeldOut], in_sample: Mapping[str, float]) -> str:
    """Markdown: one row per held-out category, then the LOCO figure and each candidate's in-sample score."""
    lines = ["| held-out category | chosen on the others | NAB threshold | score on the others | held-out score |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {h.category} | {h.chosen} | {h.threshold:.4f} | {h.train_score:.2f} | "
              f"{h.score:.2f} |" if h.perfect != h.null else
              f"| {h.category} | {h.chosen} | {h.threshold:.4f} | {h.train_score:.2f} | no windows; raw {h.raw:+.2f} |"
              for h in held]
    lines.append(f"| **LOCO ({PROFILE})** | | | | **{overall(held):.2f}** |")
    lines.append("")
    lines.append("| candidate | in-sample NAB standard (threshold optimised on all categories) |")
    lines.append("|---|---:|")
    lines += [f"| {n} | {s:.2f} |" for n, s in in_sample.items()]
    return "\n".join(lines) + "\n"
