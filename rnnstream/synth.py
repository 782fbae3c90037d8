"""Deterministic synthetic metric streams with injected anomalies, for the demo and tests.

Each entity is a host-like series: a daily cycle with its own level and phase, noise, and at most one
injected incident (a spike, a level shift, a drop to a flat line, or a burst of noise), placed in the
last two thirds of the series so the detector has warmed up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("spike", "level_shift", "flatline", "noise_burst")


@dataclass(frozen=True)
class Incident:
    entity: str
    kind: str
    start: float   # epoch seconds
    end: float


def generate(n_entities: int = 8, n_steps: int = 3000, step_seconds: float = 300.0,
             start: float = 1_700_000_000.0, seed: int = 7) -> tuple[list[dict], list[Incident]]:
    """Records ``{"host", "ts", "cpu"}`` interleaved in time order, and the incidents injected."""
    rng = np.random.default_rng(seed)
    t = start + step_seconds * np.arange(n_steps)
    day = 2 * np.pi * (t % 86400) / 86400
    columns, incidents = [], []
    for e in range(n_entities):
        name = f"host-{e:02d}"
        level = rng.uniform(20, 60)
        series = level + 0.3 * level * np.sin(day + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.03 * level, n_steps)
        if e % 4 != 3:  # one entity in four stays normal
            kind = KINDS[len(incidents) % len(KINDS)]
            at = int(rng.integers(n_steps // 2, n_steps - 200))
            length = {"spike": 1, "level_shift": 150, "flatline": 120, "noise_burst": 60}[kind]
            if kind == "spike":
                series[at] += 1.5 * level
            elif kind == "level_shift":
                series[at:at + length] += 0.8 * level
            elif kind == "flatline":
                series[at:at + length] = series[at]
            else:
                series[at:at + length] += rng.normal(0, 0.4 * level, length)
            incidents.append(Incident(name, kind, float(t[at]), float(t[min(at + length, n_steps - 1)])))
        columns.append((name, np.maximum(series, 0.0)))
    records = [{"host": name, "ts": float(t[i]), "cpu": round(float(s[i]), 3)}
               for i in range(n_steps) for name, s in columns]
    return records, incidents
