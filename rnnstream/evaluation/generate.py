"""Generate the development corpus described by a corpus definition (``config/corpus.yaml``).

What comes from GutenTAG (``timeeval-gutentag``, the ``eval`` extra): every entity's base signal per
feature (sine, random walk, square wave, random mode jumps) with its white noise, and every labelled
anomaly injected into it (extremum, mean, variance, trend, frequency, pattern, platform, amplitude,
mode-correlation), at positions and with parameters this module draws. GutenTAG works on row
indices only.

What this module adds, seeded from the same corpus seed, to make the series look like metrics:
real timestamps (a sampling step per stream; the sine's period is one day of that step, the square
wave's 2 to 24 hours), irregular sampling (each timestamp jittered), one gap per some entities
(rows dropped, never inside an anomaly), a weekend dip, levels and units (a scale per feature), and
for the ``counts`` category the whole observation model: the GutenTAG signal is a log-intensity,
multiplied by lognormal bursts (a Markov burst regime) and drawn as Poisson counts, so normal data
has heavy-tailed bursts; a platform there is a dead exporter reporting zeros. Several entities per
stream are interleaved in timestamp order.

Guaranteed: the same definition and seed give byte-identical files (GutenTAG seeds every series
from the corpus seed and the series' name; this module draws from ``default_rng([seed, stream])``,
so the first streams of a corpus do not depend on how many streams follow); every window is one
injected anomaly, on rows that exist, and windows of one entity are at least ``MIN_SEPARATION`` rows
apart. Not guaranteed: that every anomaly is visible (a mean shift of 0.8 amplitudes on a noisy
random walk can be subtle; that is the point).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rnnstream.errors import RnnstreamError
from rnnstream.nab.dataset import parse_timestamps, read_parsed

from .layout import Stream, Window, write_manifest, write_stream, write_windows

DAY = 86400
MIN_SEPARATION = 60                      # rows between two anomalies of one entity
BATCH_PERIODS_HOURS = (2, 4, 6, 12, 24)
MODE_JUMPS = (4, 8)                      # random-mode-jump: mode changes over the series
DEFAULT_OUT = Path("out") / "corpus"
SIGNAL = {"seasonal": "sine", "counts": "sine", "gauge": "random-walk", "batch": "square",
          "modes": "random-mode-jump"}
TYPES = ("extremum", "mean", "variance", "trend", "frequency", "pattern", "platform", "amplitude",
         "mode-correlation")
COUNTS_PLATFORM = -12.0                  # log-intensity of a dead exporter: Poisson(level * e^-12) = 0


class CorpusDefinitionError(RnnstreamError):
    """The corpus definition is malformed. The message names the file and key."""


# ---------------------------------------------------------------- the definition

REQUIRED = ("name", "streams", "entities", "features", "events", "step_seconds", "jitter", "gap_share",
            "gap_events", "start", "normal_share", "anomalies", "anomaly_from", "weekend_dip",
            "categories", "anomaly_types", "counts")


def load_definition(path: str | Path, preset: str | None = None, streams: int | None = None) -> dict:
    """The corpus definition at ``path``, with a preset's keys and ``streams`` applied, checked."""
    path = Path(path)
    raw = read_parsed(path, yaml.safe_load, "YAML", (yaml.YAMLError,), CorpusDefinitionError)
    if not isinstance(raw, dict):
        raise CorpusDefinitionError(f"{path}: expected a mapping")
    presets = raw.pop("presets", {}) or {}
    if preset is not None:
        if preset not in presets:
            raise CorpusDefinitionError(f"{path}: presets.{preset}: no such preset (have {sorted(presets)})")
        raw.update(presets[preset])
    if streams is not None:
        raw["streams"] = streams
    _check(raw, path)
    return raw


def _check(d: dict, path: Path) -> None:
    def fail(key: str, msg: str) -> None:
        raise CorpusDefinitionError(f"{path}: {key}: {msg}")

    for key in REQUIRED:
        if key not in d:
            fail(key, "missing")
    for key in ("entities", "features", "events", "gap_events", "anomalies", "weekend_dip"):
        v = d[key]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] <= v[1]):
            fail(key, f"expected [lo, hi] with lo <= hi, got {v!r}")
    if not (isinstance(d["streams"], int) and d["streams"] >= 1):
        fail("streams", "expected a positive integer")
    if not 1 <= d["features"][0] <= d["features"][1] <= 16:
        fail("features", "must lie within [1, 16] (a detector takes at most 16 features)")
    if d["events"][0] < 200:
        fail("events", "at least 200 rows per entity (warm-up, probation and room for anomalies)")
    if not (0 <= d["jitter"] < 1):
        fail("jitter", "must be in [0, 1) so that an entity's timestamps keep increasing")
    if not (0.15 <= d["anomaly_from"] < 0.9):
        fail("anomaly_from", "must be in [0.15, 0.9): anomalies must fall after NAB's probation")
    cats = d["categories"]
    if not isinstance(cats, dict) or not cats:
        fail("categories", "expected a mapping of category -> {anomalies: [...]}")
    for cat, spec in cats.items():
        if cat not in SIGNAL:
            fail(f"categories.{cat}", f"unknown category (known: {sorted(SIGNAL)})")
        least = (spec or {}).get("min_features", 1)
        if not (isinstance(least, int) and 1 <= least <= d["features"][1]):
            fail(f"categories.{cat}.min_features", f"expected an integer in [1, features[1] = {d['features'][1]}], got {least!r}")
        if "mode-correlation" in (spec or {}).get("anomalies", []) and max(least, d["features"][0]) < 2:
            fail(f"categories.{cat}.min_features", "mode-correlation inverts one feature against the others: "
                 "it needs at least 2 features (min_features: 2)")
        for t in (spec or {}).get("anomalies", []):
            if t not in d["anomaly_types"]:
                fail(f"categories.{cat}.anomalies", f"{t!r} is not defined under anomaly_types")
    for t, spec in d["anomaly_types"].items():
        if t not in TYPES:
            fail(f"anomaly_types.{t}", f"unknown anomaly type (known: {list(TYPES)})")
        if "length" not in spec or spec["length"][0] < 1:
            fail(f"anomaly_types.{t}.length", "expected [lo, hi] rows, lo >= 1")
    try:
        parse_timestamps([d["start"]], f"{path}: start")
    except RnnstreamError as exc:
        fail("start", str(exc))


# ---------------------------------------------------------------- planning (all draws from our rng)

@dataclass
class Anomaly:
    type: str
    channel: int
    position: int
    length: int
    params: dict


@dataclass
class EntityPlan:
    name: str
    events: int
    t0: int
    channels: list[dict]                     # GutenTAG base oscillations
    anomalies: list[Anomaly]
    level: np.ndarray                        # per channel
    scale: np.ndarray
    weekend: np.ndarray
    gap: tuple[int, int] | None = None       # rows [a, b) dropped
    extra: dict = field(default_factory=dict)


@dataclass
class StreamPlan:
    key: str
    category: str
    step: int
    features: list[str]
    entities: list[EntityPlan]


def _category(defn: dict, category: str) -> dict:
    return defn["categories"][category] or {}


def _uniform(rng: np.random.Generator, lohi) -> float:
    return float(rng.uniform(lohi[0], lohi[1]))


def _integer(rng: np.random.Generator, lohi) -> int:
    return int(rng.integers(lohi[0], lohi[1] + 1))


def _channel(category: str, step: int, rng: np.random.Generator, entity_seed: int, mode_jumps: int) -> dict:
    if category in ("seasonal", "counts"):
        amp = 1.0 if category == "seasonal" else _uniform(rng, (0.4, 1.0))
        return {"kind": "sine", "frequency": 100.0 * step / DAY, "amplitude": amp,
                "variance": _uniform(rng, (0.03, 0.2) if category == "seasonal" else (0.02, 0.08))}
    if category == "gauge":
        return {"kind": "random-walk", "amplitude": 1.0, "variance": _uniform(rng, (0.01, 0.08))}
    if category == "batch":
        period = int(rng.choice(BATCH_PERIODS_HOURS)) * 3600
        return {"kind": "square", "frequency": 100.0 * step / period, "amplitude": 1.0,
                "variance": _uniform(rng, (0.03, 0.15))}
    # One jump count and seed for every channel of the entity: GutenTAG then puts the mode changes of
    # all channels at the same rows (a service switching regimes moves all its metrics at once).
    return {"kind": "random-mode-jump", "frequency": mode_jumps, "channel-diff": 0.5,
            "channel-offset": 1.0, "random-seed": entity_seed, "variance": _uniform(rng, (0.02, 0.1))}


def _kind_params(atype: str, category: str, spec: dict, rng: np.random.Generator, length: int) -> dict:
    """GutenTAG parameters of one anomaly of ``length`` rows; ``magnitude`` is in units of the signal's amplitude."""
    mag = _uniform(rng, spec["magnitude"]) if "magnitude" in spec else 1.0
    sign = 1.0 if rng.random() < 0.7 else -1.0     # metrics mostly go up in trouble
    if atype == "extremum":
        return {"kind": "extremum", "min": bool(sign < 0), "local": False}
    if atype == "mean":
        return {"kind": "mean", "offset": sign * mag}
    if atype == "variance":
        return {"kind": "variance", "variance": mag}
    if atype == "trend":
        # GutenTAG evaluates the polynomial at the anomaly's row numbers 0..length-1 and keeps its last
        # value after the window: the slope is per row, so the ramp ends (and stays) `mag` amplitudes away.
        return {"kind": "trend", "oscillation": {"kind": "polynomial",
                                                 "polynomial": [0.0, sign * mag / max(length - 1, 1)]}}
    if atype == "frequency":
        return {"kind": "frequency", "frequency_factor": mag if sign > 0 else 1.0 / mag}
    if atype == "pattern":
        if category == "batch":
            return {"kind": "pattern", "square_duty": _uniform(rng, (0.1, 0.3) if sign > 0 else (0.7, 0.9))}
        return {"kind": "pattern", "sinusoid_k": mag}
    if atype == "platform":
        return {"kind": "platform", "value": COUNTS_PLATFORM if category == "counts" else 0.0}
    if atype == "amplitude":
        return {"kind": "amplitude", "amplitude_factor": mag if sign > 0 else 1.0 / mag}
    return {"kind": "mode-correlation"}


def _length(atype: str, lohi, rng: np.random.Generator) -> int:
    n = _integer(rng, lohi)
    if atype == "trend":  # GutenTAG's trend needs int(0.2 n) + int(0.8 n) == n, i.e. n a multiple of 5
        n = max(5, 5 * round(n / 5))
    return n


def _place(n: int, lengths: list[int], start: int, rng: np.random.Generator) -> list[int] | None:
    """Non-overlapping positions, MIN_SEPARATION apart, in [start, n - 1 - MIN_SEPARATION]; None if none fit."""
    if any(n - L - MIN_SEPARATION <= start for L in lengths):
        return None
    for _ in range(50):
        pos = [int(rng.integers(start, n - L - MIN_SEPARATION)) for L in lengths]
        spans = sorted(zip(pos, lengths))
        if all(b[0] - (a[0] + a[1]) >= MIN_SEPARATION for a, b in zip(spans, spans[1:])):
            return pos
    return None


def plan_stream(defn: dict, seed: int, index: int) -> StreamPlan:
    """Everything about stream ``index`` that is drawn from our rng (GutenTAG draws the rest)."""
    rng = np.random.default_rng([seed, index])
    cats = list(defn["categories"])
    category = cats[index % len(cats)]
    allowed = _category(defn, category).get("anomalies", [])
    step = int(rng.choice(defn["step_seconds"]))
    lo, hi = defn["features"]
    n_feat = _integer(rng, (max(lo, _category(defn, category).get("min_features", 1)), hi))
    features = [f"m{j}" for j in range(n_feat)]
    start = int(parse_timestamps([defn["start"]])[0].astype(np.int64))
    key = f"{category}/{category}_{index:04d}.csv"
    entities = []
    for e in range(_integer(rng, defn["entities"])):
        n = _integer(rng, defn["events"])
        entity_seed = int(rng.integers(2**31))
        mode_jumps = int(rng.integers(*MODE_JUMPS)) if category == "modes" else 0
        channels = [_channel(category, step, rng, entity_seed, mode_jumps) for _ in range(n_feat)]
        anomalies: list[Anomaly] = []
        if allowed and rng.random() >= defn["normal_share"]:
            types = [str(rng.choice(allowed)) for _ in range(_integer(rng, defn["anomalies"]))]
            lengths = [_length(t, defn["anomaly_types"][t]["length"], rng) for t in types]
            pos = _place(n, lengths, int(defn["anomaly_from"] * n), rng)
            for t, L, p in zip(types, lengths, pos or []):
                params = _kind_params(t, category, defn["anomaly_types"][t], rng, L)
                anomalies.append(Anomaly(t, int(rng.integers(n_feat)), p, L, params))
        plan = EntityPlan(
            name=f"{category[0]}{index:04d}-e{e}", events=n, t0=start + int(rng.integers(DAY // step)) * step,
            channels=channels, anomalies=anomalies,
            level=rng.uniform(2.0, 6.0, n_feat), scale=10.0 ** rng.uniform(-1.0, 3.0, n_feat),
            weekend=rng.uniform(*defn["weekend_dip"], n_feat))
        if category == "counts":
            plan.extra["count_level"] = float(np.exp(rng.uniform(*np.log(defn["counts"]["level"]))))
        if rng.random() < defn["gap_share"]:
            g = _integer(rng, defn["gap_events"])
            a = int(rng.integers(int(0.15 * n), n - g))
            if not any(a < x.position + x.length + 1 and x.position - 1 < a + g for x in anomalies):
                plan.gap = (a, a + g)
        entities.append(plan)
    return StreamPlan(key, category, step, features, entities)


def gutentag_config(plan: StreamPlan) -> list[dict]:
    """GutenTAG ``timeseries`` entries, one per entity of the stream."""
    out = []
    for ent in plan.entities:
        out.append({
            "name": f"{plan.key}#{ent.name}",
            "length": ent.events,
            "base-oscillations": ent.channels,
            "anomalies": [{"exact-position": a.position, "length": a.length, "channel": a.channel,
                           "kinds": [a.params]} for a in ent.anomalies],
        })
    return out


def run_gutentag(entries: list[dict], seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (values (n, channels), labels (n,))}`` from GutenTAG, its progress bars silenced."""
    with warnings.catch_warnings():  # its jsonschema RefResolver import is deprecated upstream
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from gutenTAG import GutenTAG  # the `eval` extra; imported here so the rest of rnnstream runs without it
        except ImportError:
            raise RnnstreamError("generating the corpus needs timeeval-gutentag: pip install -e '.[eval]'") from None

    with contextlib.redirect_stderr(io.StringIO()):
        gt = GutenTAG(n_jobs=1, seed=seed).load_config_dict({"timeseries": entries})
        series = gt.generate(return_timeseries=True) or []
    out = {}
    for ts in series:
        df = ts.timeseries
        out[ts.name] = (df[[c for c in df.columns if c.startswith("value-")]].to_numpy(np.float64),
                        df["is_anomaly"].to_numpy(np.int64))
    return out


# ---------------------------------------------------------------- metric shapes (ours)

def _weekend(ts: np.ndarray) -> np.ndarray:
    """1.0 on Saturdays and Sundays (UTC), else 0.0."""
    weekday = ((ts // DAY) + 3) % 7            # 1970-01-01 was a Thursday (3)
    return (weekday >= 5).astype(np.float64)


def _bursts(n: int, spec: dict, rng: np.random.Generator) -> np.ndarray:
    """A Markov burst regime: lognormal multipliers (>= 1) over geometric stretches, else 1."""
    mult = np.ones(n)
    starts = np.flatnonzero(rng.random(n) < spec["burst_probability"])
    for s in starts:
        length = int(rng.geometric(1.0 / spec["burst_events"]))
        mult[s:s + length] *= np.exp(abs(rng.normal(0.0, spec["burst_sigma"])))
    return mult


def shape_entity(plan: StreamPlan, ent: EntityPlan, values: np.ndarray, defn: dict,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and metric-like values of one entity (before its gap is cut)."""
    n = ent.events
    jitter = np.rint((rng.random(n) - 0.5) * defn["jitter"] * plan.step).astype(np.int64)
    ts = ent.t0 + plan.step * np.arange(n, dtype=np.int64) + jitter
    weekend = _weekend(ts)[:, None] * ent.weekend[None, :]
    flat = np.zeros_like(values, dtype=bool)   # platform rows stay flat: no weekend dip there
    for a in ent.anomalies:
        if a.type == "platform":
            flat[a.position:a.position + a.length, a.channel] = True
    weekend[flat] = 0.0
    if plan.category == "counts":
        lam = ent.extra["count_level"] * np.exp(values - weekend) * _bursts(n, defn["counts"], rng)[:, None]
        out = rng.poisson(np.minimum(lam, 1e9)).astype(np.float64)
    elif plan.category == "seasonal":
        out = (ent.level + values - weekend) * ent.scale
    else:
        out = (ent.level + values) * ent.scale
    return ts, out


def build_stream(plan: StreamPlan, generated: dict, defn: dict, seed: int, index: int) -> tuple[Stream, list[Window]]:
    rng = np.random.default_rng([seed, index, 1])
    parts, windows = [], []
    for code, ent in enumerate(plan.entities):
        values, labels = generated[f"{plan.key}#{ent.name}"]
        ts, out = shape_entity(plan, ent, values, defn, rng)
        keep = np.ones(ent.events, dtype=bool)
        if ent.gap is not None:
            keep[ent.gap[0]:ent.gap[1]] = False
        for a in ent.anomalies:
            windows.append(Window(ent.name, int(ts[a.position]), int(ts[a.position + a.length - 1]), a.type,
                                  (plan.features[a.channel],)))
        parts.append((np.full(int(keep.sum()), code), ts[keep], out[keep]))
    entity = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    vals = np.concatenate([p[2] for p in parts])
    order = np.lexsort((entity, ts))
    stream = Stream(plan.key, [e.name for e in plan.entities], entity[order].astype(np.int64), ts[order],
                    vals[order], plan.features)
    return stream, sorted(windows, key=lambda w: (w.entity, w.start))


@dataclass
class Generated:
    root: Path
    streams: int
    entities: int
    rows: int
    windows: int
    seconds: float


GENERATOR_VERSION = 3
"""Changes whenever the same definition and seed would give other files (2: trends ramp to their
magnitude; 3: the features of a ``modes`` entity change modes at the same rows), so that ``ensure``
regenerates a corpus written by an older generator."""


def corpus_dir(defn: dict, seed: int, out: str | Path = DEFAULT_OUT) -> Path:
    return Path(out) / f"{defn['name']}-{defn['streams']}-{seed}"


def generate(defn: dict, seed: int, root: str | Path) -> Generated:
    """Write the corpus ``defn`` with ``seed`` to ``root`` in the generic layout."""
    started = time.perf_counter()
    root = Path(root)
    if (root / "data").is_dir():
        shutil.rmtree(root / "data")   # a previous corpus of another definition: no stale streams
    plans = [plan_stream(defn, seed, i) for i in range(defn["streams"])]
    generated = run_gutentag([e for p in plans for e in gutentag_config(p)], seed)
    all_windows: dict[str, list[Window]] = {}
    rows = 0
    for i, plan in enumerate(plans):
        stream, windows = build_stream(plan, generated, defn, seed, i)
        write_stream(root, stream)
        all_windows[plan.key] = windows
        rows += stream.timestamps.size
    write_windows(root, all_windows)
    write_manifest(root, {"name": defn["name"], "seed": seed, "definition": defn, "generator_version": GENERATOR_VERSION,
                          "generator": "rnnstream.evaluation.generate + timeeval-gutentag",
                          "categories": {c: {"signal": SIGNAL[c], **(s or {})} for c, s in defn["categories"].items()}})
    return Generated(root, len(plans), sum(len(p.entities) for p in plans), rows,
                     sum(len(w) for w in all_windows.values()), time.perf_counter() - started)


def ensure(defn: dict, seed: int, out: str | Path = DEFAULT_OUT) -> Path:
    """The corpus directory for ``defn``/``seed``, generated if its manifest is missing or differs."""
    import json

    root = corpus_dir(defn, seed, out)
    manifest = root / "corpus.json"
    if manifest.is_file():
        try:
            have = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            have = {}
        if (have.get("definition") == json.loads(json.dumps(defn)) and have.get("seed") == seed
                and have.get("generator_version") == GENERATOR_VERSION):
            return root
    generate(defn, seed, root)
    return root


def summary_line(g: Generated) -> str:
    return (f"{g.streams} streams, {g.entities} entities, {g.rows} rows, {g.windows} labelled anomalies "
            f"in {g.seconds:.1f}s -> {g.root}")


def describe(defn: dict) -> dict[str, Any]:
    """Category -> base signal and anomaly types (for reports)."""
    return {c: {"signal": SIGNAL[c], "anomalies": list((s or {}).get("anomalies", []))}
            for c, s in defn["categories"].items()}
