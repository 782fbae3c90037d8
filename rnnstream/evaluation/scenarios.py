"""Behaviour scenarios: the two independent checks of issue 8, seeded, run with a given configuration.

Two families of labelled streams, generated here (no data files), each seed a different variant:

- ``sre``: one stream of five hosts, each with ``cpu`` (%), ``latency_ms`` and ``requests`` (per
  interval) at 1, 2 or 5 minutes (seed 0, 1, 2, then repeating), 2,000 events a host: a daily pattern
  driven by each host's load, AR(1) noise, heavy-tailed latency. Injected, each on its own host, in
  the second half: a *blip* (cpu up 8 noise deviations for one event: a marginal alarm or none; its
  calibrated score is 0.47-0.60 at seeds 0-4, 0.93 at seed 5) followed 40 minutes later by a large
  *spike* (cpu up 16 noise deviations, 1 event); a *level shift* of latency (up 5 noise deviations,
  to the end: a slow deploy); a 6-hour *flatline* of every metric of one host (a dead exporter: even
  seeds repeat the last values, odd seeds report zeros). Two hosts stay normal.
- ``sensors``: eight files shaped like an industrial test bed (each file one entity, 8 correlated
  sensors sampled every second, 1,500 rows), driven by a shared latent operating point (a smooth
  mean-reverting load and a temperature that follows it); each file holds one fault moving 1 or 2
  sensors, in the last 40% of its rows: *drift* (a ramp to 6-12 noise deviations), *level shift*
  (4-10 deviations), *noise rise* (noise x 3-6) or *stuck value* (the sensor repeats one value), two
  files of each.

:func:`run` scores a scenario causally with a fresh detector per stream (inline training, the
detector's ``features`` set to the scenario's columns, nothing else changed) and :func:`assess`
turns the scores into what a user sees: per injected anomaly, published or not, the peak score (before
suppression), the delay to the first published alarm, the kinds and the blamed features of the
published alarms inside it;
false alarms per 10,000 events; for ``sensors`` the event-wise F1 (recall of faults, precision of
alarms) and the point-wise F1 of the published flag and of the anomalous flag (every row whose own
score reaches the threshold). Guaranteed: same seed, same rows, bit for bit
(numpy's PCG64 streams); scores depend only on the rows and the configuration. Not guaranteed: that
these shapes cover every real metric; they are the shapes the independent checks reported failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

#: Events of a host (or rows of a sensor file) after an anomaly's last row that still count as finding it.
TOLERANCE_EVENTS = 10
FAMILIES = ("sre", "sensors")
SRE_STEPS = (60.0, 120.0, 300.0)
SRE_FEATURES = ("cpu", "latency_ms", "requests")
#: Sizes of the SRE anomalies, in the metric's noise deviations: a blip that scores about 0.5 with the
#: defaults (a marginal alarm at the 0.5 threshold), a spike twice as large 40 minutes later, a latency
#: level shift.
BLIP, SPIKE, SHIFT = 8.0, 16.0, 5.0
SENSOR_FEATURES = ("accel1_rms", "accel2_rms", "current", "pressure", "temperature", "thermocouple",
                   "voltage", "flow_rms")
SENSOR_FAULTS = ("drift", "level_shift", "noise_rise", "stuck")
#: Size ranges of the sensor faults: drift and level shift in the sensor's noise deviations (the
#: drift's at its end), noise rise as a factor of its noise deviation; stuck has none.
FAULT_SIZES = {"drift": (6.0, 12.0), "level_shift": (4.0, 10.0), "noise_rise": (3.0, 6.0), "stuck": (0.0, 0.0)}
START = 1_798_761_600.0   # 2027-01-01 00:00 UTC


@dataclass(frozen=True)
class Injected:
    """One injected anomaly: rows ``first..last`` (inclusive, indices into the stream's rows) of one entity.

    ``expected`` is the kind a user expects the detector to name; ``scored`` is False for the marginal
    blip, which is reported but counts neither as an anomaly to find nor, when it alarms, as a false one.
    """

    name: str
    entity: str
    first: int
    last: int
    features: tuple[str, ...]
    expected: str
    scored: bool = True
    size: float = 0.0   # in the feature's noise deviations (noise rise: the factor)


@dataclass
class Stream:
    """Rows in arrival order: ``entity_names[entity[i]]`` at ``timestamps[i]`` with ``values[i]`` (F,)."""

    key: str
    features: tuple[str, ...]
    entity_names: list[str]
    entity: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    injected: list[Injected]


@dataclass
class Scenario:
    family: str
    seed: int
    variant: str
    streams: list[Stream]


# ---------------------------------------------------------------- generators

def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal deviation ``sd``."""
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def _interleave(key: str, features: tuple[str, ...], names: list[str], t: np.ndarray,
                per_entity: list[np.ndarray], local: list[Injected]) -> Stream:
    """Rows of every entity at common times ``t``, in time order (entity order within one time);
    ``local`` anomalies' rows are indices into their entity's own rows, mapped to the stream's."""
    n, k = len(t), len(names)
    entity = np.tile(np.arange(k), n)
    ts = np.repeat(t, k)
    values = np.stack(per_entity, axis=1).reshape(n * k, len(features))
    injected = [replace(a, first=a.first * k + names.index(a.entity), last=a.last * k + names.index(a.entity))
                for a in local]
    return Stream(key, features, list(names), entity, ts, values, injected)


def sre(seed: int, events: int = 2000, hosts: int = 5) -> Scenario:
    """The multi-host SRE stream of variant ``seed`` (see the module docstring)."""
    rng = np.random.default_rng([8, 0, seed])
    step = SRE_STEPS[seed % len(SRE_STEPS)]
    flat_mode = ("repeat", "zeros")[seed % 2]
    t = START + step * np.arange(events)
    day = 2 * np.pi * ((t - START) % 86400.0) / 86400.0
    names = [f"host-{h}" for h in range(hosts)]
    roles = list(rng.permutation(["spike", "shift", "flatline"] + ["normal"] * (hosts - 3)))
    per_entity, local = [], []
    rows_40min = int(round(2400.0 / step))
    flat_rows = int(round(6 * 3600.0 / step))
    for h, name in enumerate(names):
        peak_hour = rng.uniform(12.0, 18.0)
        load = 0.5 + 0.4 * np.cos(day - 2 * np.pi * peak_hour / 24.0)        # 0.1 .. 0.9
        cpu_sd = rng.uniform(1.5, 3.0)
        cpu = rng.uniform(15, 30) + rng.uniform(20, 40) * load + _ar1(rng, events, 0.6, cpu_sd)
        lat_base = rng.uniform(80, 200)
        lat_sd = 0.05 * lat_base
        latency = lat_base * (1 + 0.3 * load) + lat_sd * (np.exp(_ar1(rng, events, 0.3, 0.5)) - np.exp(0.125))
        rate = rng.uniform(200, 800) * step / 60.0 * (0.3 + load)
        requests = rng.poisson(rate).astype(float)
        x = np.stack([cpu, latency, requests], axis=1)
        role = roles[h]
        if role == "spike":
            at = int(rng.integers(events // 2, events - 3 * rows_40min))
            x[at, 0] += BLIP * cpu_sd
            local.append(Injected("blip", name, at, at, ("cpu",), "spike", scored=False, size=BLIP))
            at += rows_40min
            x[at, 0] += SPIKE * cpu_sd
            local.append(Injected("spike", name, at, at, ("cpu",), "spike", size=SPIKE))
        elif role == "shift":
            at = int(rng.integers(events // 2, int(events * 0.75)))
            x[at:, 1] += SHIFT * lat_sd
            local.append(Injected("level_shift", name, at, events - 1, ("latency_ms",), "level_shift", size=SHIFT))
        elif role == "flatline":
            at = int(rng.integers(events // 2, events - flat_rows - 50))
            x[at:at + flat_rows] = x[at - 1] if flat_mode == "repeat" else 0.0
            local.append(Injected(f"flatline_{flat_mode}", name, at, at + flat_rows - 1, SRE_FEATURES, "flatline"))
        np.round(x, 2, out=x)   # an exporter's precision: a stuck value repeats exactly, a live one rarely
        per_entity.append(x)
    stream = _interleave(f"sre-{seed}", SRE_FEATURES, names, t, per_entity, local)
    return Scenario("sre", seed, f"{int(step)} s sampling, flatline {flat_mode}", [stream])


def _sensor_file(rng: np.random.Generator, index: int, fault: str, rows: int) -> Stream:
    t = START + index * 86400.0 + np.arange(rows, dtype=float)
    # Shared latent operating point: a smooth mean-reverting load, a temperature lagging it.
    drive = _ar1(rng, rows, 0.995, 1.0)
    load = np.convolve(drive, np.ones(30) / 30, mode="same")
    temp = np.empty(rows)
    temp[0] = load[0]
    for i in range(1, rows):
        temp[i] = temp[i - 1] + 0.01 * (load[i] - temp[i - 1])
    mix = rng.uniform(0.5, 1.5, (8, 2)) * rng.choice([-1.0, 1.0], (8, 2))
    mix[4, 0], mix[5, 0] = 0.1, 0.1          # the temperatures follow the lagged temperature mostly
    level = rng.uniform(1.0, 100.0, 8)
    scale = level * rng.uniform(0.02, 0.1, 8)
    noise_sd = scale * rng.uniform(0.1, 0.3, 8)
    latent = np.stack([load, temp], axis=1) @ mix.T                    # (rows, 8)
    x = level + scale * latent
    noise = np.stack([_ar1(rng, rows, 0.3, 1.0) for _ in range(8)], axis=1) * noise_sd
    n_moved = 1 + int(rng.integers(0, 2))
    moved = np.sort(rng.choice(8, n_moved, replace=False))
    at = int(rng.integers(int(rows * 0.6), int(rows * 0.75)))
    length = int(rng.integers(int(rows * 0.1), int(rows * 0.2)))
    end = min(at + length, rows)
    sign = rng.choice([-1.0, 1.0])
    size = rng.uniform(*FAULT_SIZES[fault])
    for f in moved:
        if fault == "drift":
            x[at:end, f] += sign * np.linspace(0.0, size * noise_sd[f], end - at)
        elif fault == "level_shift":
            x[at:end, f] += sign * size * noise_sd[f]
        elif fault == "noise_rise":
            noise[at:end, f] *= size
    x += noise
    if fault == "stuck":
        x[at:end, moved] = x[at - 1, moved]
    np.round(x, 4, out=x)
    names = tuple(SENSOR_FEATURES[f] for f in moved)
    expected = {"drift": "level_shift", "level_shift": "level_shift", "noise_rise": "spike",
                "stuck": "flatline"}[fault]
    inj = Injected(fault, "testbed", at, end - 1, names, expected, size=round(float(size), 1))
    return Stream(f"sensors-{index}-{fault}", SENSOR_FEATURES, ["testbed"], np.zeros(rows, dtype=np.int64), t, x,
                  [inj])


def sensors(seed: int, files: int = 8, rows: int = 1500) -> Scenario:
    """The eight-sensor test bed of variant ``seed``: ``files`` files, faults cycling through SENSOR_FAULTS."""
    rng = np.random.default_rng([8, 1, seed])
    streams = [_sensor_file(rng, i, SENSOR_FAULTS[i % len(SENSOR_FAULTS)], rows) for i in range(files)]
    return Scenario("sensors", seed, f"{files} files x {rows} rows at 1 s", streams)


def generate(family: str, seed: int) -> Scenario:
    if family == "sre":
        return sre(seed)
    if family == "sensors":
        return sensors(seed)
    raise ValueError(f"unknown scenario family {family!r}; expected one of {FAMILIES}")


# ---------------------------------------------------------------- scoring

@dataclass
class Scores:
    """Per row: the score before suppression, the published flag, and per feature the blamed kind;
    ``anomalous``: the row's own score reached the threshold (None: taken as the published flag)."""

    score: np.ndarray
    alarm: np.ndarray
    kind: np.ndarray
    anomalous: np.ndarray | None = None


def detector_config(config_path: str | Path, detector: str | None = None, overrides: dict[str, Any] | None = None):
    """The (validated) detector configuration of ``config_path`` with dotted ``overrides``."""
    from rnnstream.config import load_config_text

    from .run import config_text

    return load_config_text(config_text(config_path, detector, overrides)).detector(detector)


def score(cfg: Any, stream: Stream) -> Scores:
    """Score ``stream`` causally with a fresh detector built from ``cfg`` (its features set to the stream's)."""
    from .run import detector_rows

    rows = detector_rows(cfg.with_features(stream.features), stream.entity_names, stream.entity, stream.values,
                         stream.timestamps)
    return Scores(rows.unsuppressed, rows.alarm, rows.kind, rows.anomalous)


# ---------------------------------------------------------------- what a user sees

@dataclass
class AnomalyOutcome:
    stream: str
    name: str
    entity: str
    features: tuple[str, ...]
    expected: str
    scored: bool
    size: float
    published: bool
    peak: float
    delay_events: float      # nan when not published
    delay_seconds: float
    kinds: tuple[str, ...]   # of every published alarm inside (none published: of the peak row)
    blamed: tuple[str, ...]  # likewise, the features blamed


@dataclass
class StreamOutcome:
    key: str
    rows: int
    anomalies: list[AnomalyOutcome]
    false_alarms: int
    alarms: int
    alarm_rows: np.ndarray
    labelled_rows: int = 0
    flagged_labelled_rows: int = 0
    novelty_alarms: int = 0     # alarms raised by the novelty rule alone (no calibrated test crosses)
    anomalous_rows: int = 0     # rows whose own score reached the threshold
    anomalous_labelled_rows: int = 0


def kind_named(a: AnomalyOutcome) -> bool:
    """Whether the published alarms name the expected kind (a spike's or noise rise's may be a drop)."""
    return a.expected in a.kinds or (a.expected == "spike" and "drop" in a.kinds)


def _blame(stream: Stream, kind_row: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from rnnstream.kernels.calibrate import KIND_NAMES

    blamed = [(stream.features[f], KIND_NAMES[int(k)]) for f, k in enumerate(kind_row) if k]
    return tuple(dict.fromkeys(k for _, k in blamed)), tuple(n for n, _ in blamed)


def assess(stream: Stream, scores: Scores, tolerance: int = TOLERANCE_EVENTS) -> StreamOutcome:
    """Per injected anomaly what was published, and the alarms outside every anomaly (false alarms).

    An anomaly covers its entity's rows ``first..last`` plus ``tolerance`` more events of that entity;
    an alarm there publishes it; an alarm outside every such span is false (the blip's span excepted).
    """
    inside = np.zeros(len(stream.entity), dtype=bool)
    labelled = np.zeros(len(stream.entity), dtype=bool)
    outcomes = []
    for a in stream.injected:
        e = stream.entity_names.index(a.entity)
        rows = np.flatnonzero(stream.entity == e)
        lo = int(np.searchsorted(rows, a.first))
        hi = min(int(np.searchsorted(rows, a.last, side="right")) + tolerance, len(rows))
        later = [b.first for b in stream.injected if b.entity == a.entity and b.first > a.last]
        if later:   # the span ends where the entity's next anomaly starts (the blip before the spike)
            hi = min(hi, int(np.searchsorted(rows, min(later))))
        span = rows[lo:hi]
        inside[span] = True
        labelled[rows[lo:int(np.searchsorted(rows, a.last, side="right"))]] |= a.scored
        hits = span[scores.alarm[span]]
        peak_row = span[int(np.argmax(scores.score[span]))]
        at = int(hits[0]) if hits.size else peak_row
        pairs = [_blame(stream, scores.kind[h]) for h in (hits if hits.size else [peak_row])]
        kinds = tuple(dict.fromkeys(k for ks, _ in pairs for k in ks))    # in order of appearance
        blamed = tuple(dict.fromkeys(b for _, bs in pairs for b in bs))
        delay_events = float(np.searchsorted(rows, at) - lo) if hits.size else float("nan")
        delay_seconds = float(stream.timestamps[at] - stream.timestamps[span[0]]) if hits.size else float("nan")
        outcomes.append(AnomalyOutcome(stream.key, a.name, a.entity, a.features, a.expected, a.scored, a.size,
                                       bool(hits.size), float(scores.score[peak_row]), delay_events,
                                       delay_seconds, kinds, blamed))
    from rnnstream.kernels.calibrate import KIND_NOVELTY

    alarm_rows = np.flatnonzero(scores.alarm)
    anomalous = scores.alarm if scores.anomalous is None else scores.anomalous
    return StreamOutcome(stream.key, len(stream.entity), outcomes, int((~inside[alarm_rows]).sum()),
                         int(alarm_rows.size), alarm_rows, int(labelled.sum()),
                         int((labelled & scores.alarm).sum()),
                         int((scores.kind[alarm_rows] == KIND_NOVELTY).any(axis=1).sum()),
                         int(anomalous.sum()), int((labelled & anomalous).sum()))


def _point_f1(hit: int, flagged: int, labelled: int) -> float:
    """Point-wise F1 of a flag on ``flagged`` rows, ``hit`` of them among the ``labelled`` rows."""
    precision = hit / flagged if flagged else 0.0
    recall = hit / labelled if labelled else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass
class Report:
    family: str
    seed: int
    variant: str
    streams: list[StreamOutcome] = field(default_factory=list)
    differs_from_naive: list[bool] | None = None   # per stream: the published alarms differ from naive's

    @property
    def anomalies(self) -> list[AnomalyOutcome]:
        return [a for s in self.streams for a in s.anomalies]

    def figures(self) -> dict[str, float]:
        scored = [a for a in self.anomalies if a.scored]
        found = sum(a.published for a in scored)
        rows = sum(s.rows for s in self.streams)
        alarms = sum(s.alarms for s in self.streams)
        false = sum(s.false_alarms for s in self.streams)
        out = {"anomalies": float(len(scored)), "published": float(found),
               "false alarms /10k": 1e4 * false / max(rows, 1), "alarms": float(alarms),
               "false alarms": float(false),
               "novelty alarms": float(sum(s.novelty_alarms for s in self.streams))}
        recall = found / max(len(scored), 1)
        precision = (alarms - false) / alarms if alarms else 0.0
        out["event F1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lab = sum(s.labelled_rows for s in self.streams)
        out["point F1"] = _point_f1(sum(s.flagged_labelled_rows for s in self.streams), alarms, lab)
        out["point F1 anomalous"] = _point_f1(sum(s.anomalous_labelled_rows for s in self.streams),
                                              sum(s.anomalous_rows for s in self.streams), lab)
        if self.differs_from_naive is not None:
            out["streams differing from naive"] = float(sum(self.differs_from_naive))
        return out


def run(family: str, seed: int, cfg: Any, naive_cfg: Any | None = None) -> Report:
    """Generate scenario ``(family, seed)``, score every stream with ``cfg`` (and with ``naive_cfg``, when
    given, to say per stream whether the published alarms differ), and assess it."""
    sc = generate(family, seed)
    rep = Report(family, seed, sc.variant)
    diffs = []
    for stream in sc.streams:
        s = score(cfg, stream)
        rep.streams.append(assess(stream, s))
        if naive_cfg is not None:
            diffs.append(not np.array_equal(score(naive_cfg, stream).alarm, s.alarm))
    rep.differs_from_naive = diffs if naive_cfg is not None else None
    return rep


def format_report(rep: Report) -> str:
    lines = [f"{rep.family} seed {rep.seed} ({rep.variant})"]
    lines.append(f"  {'stream':<24}{'anomaly':<16}{'size':>5} {'entity':<9}{'published':>9}{'peak':>7}{'delay':>16}"
                 f"  kind / blamed (expected)")
    for a in rep.anomalies:
        delay = "" if np.isnan(a.delay_events) else f"{a.delay_events:.0f} ev {a.delay_seconds / 60:.0f} min"
        pub = ("yes" if a.published else "NO") if a.scored else ("(yes)" if a.published else "(no)")
        kinds = "+".join(a.kinds) or "-"
        blamed = ",".join(a.blamed) or "-"
        size = f"{a.size:g}" if a.size else ""
        lines.append(f"  {a.stream:<24}{a.name:<16}{size:>5} {a.entity:<9}{pub:>9}{a.peak:>7.3f}{delay:>16}"
                     f"  {kinds} / {blamed} ({a.expected} / {','.join(a.features)})")
    fig = rep.figures()
    extra = ""
    if rep.family == "sensors":
        extra = (f", event F1 {fig['event F1']:.2f}, point F1 {fig['point F1']:.3f}"
                 f" (of the anomalous flag {fig['point F1 anomalous']:.3f})")
    if rep.differs_from_naive is not None:
        extra += f", alarms differ from naive persistence in {sum(rep.differs_from_naive)}/{len(rep.streams)} streams"
    lines.append(f"  published {fig['published']:.0f}/{fig['anomalies']:.0f}, {fig['alarms']:.0f} alarms, "
                 f"{fig['false alarms']:.0f} false ({fig['false alarms /10k']:.1f} /10k){extra}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command

def _summary(reports: list[Report]) -> str:
    """One table over every seed of a family: per anomaly type published / injected, then the figures."""
    fam = reports[0].family
    by_name: dict[str, list[AnomalyOutcome]] = {}
    for rep in reports:
        for a in rep.anomalies:
            by_name.setdefault(a.name, []).append(a)
    lines = [f"{fam}, seeds {','.join(str(r.seed) for r in reports)}:"]
    for name, outs in by_name.items():
        pub = [a for a in outs if a.published]
        kind_ok = sum(kind_named(a) for a in pub)
        blames = sum(bool(set(a.blamed) & set(a.features)) for a in pub)
        only = sum(set(a.blamed) <= set(a.features) and bool(a.blamed) for a in pub)
        lines.append(f"  {name:<17}published {len(pub)}/{len(outs)}, peak median {np.median([a.peak for a in outs]):.3f}"
                     f"; of the published: kind {outs[0].expected} named {kind_ok}, its features blamed {blames}"
                     f", only them {only}")
    figs = [r.figures() for r in reports]
    rows = sum(s.rows for r in reports for s in r.streams)
    false = sum(f["false alarms"] for f in figs)
    alarms = sum(f["alarms"] for f in figs)
    novelty = sum(f["novelty alarms"] for f in figs)
    line = (f"  false alarms {false:.0f} of {alarms:.0f} alarms ({novelty:.0f} alarms by the novelty rule), "
            f"{1e4 * false / rows:.1f} /10k events")
    if fam == "sensors":
        line += (f"; event F1 {np.mean([f['event F1'] for f in figs]):.2f}, point F1 of the published flag "
                 f"{np.mean([f['point F1'] for f in figs]):.3f}, of the anomalous flag "
                 f"{np.mean([f['point F1 anomalous'] for f in figs]):.3f} (mean over seeds)")
    if reports[0].differs_from_naive is not None:
        diff = sum(sum(r.differs_from_naive) for r in reports)
        line += f"; alarms differ from naive persistence in {diff}/{sum(len(r.streams) for r in reports)} streams"
    lines.append(line)
    return "\n".join(lines) + "\n"


def cmd_scenarios(args) -> int:
    import json
    import sys
    import time

    from rnnstream.errors import RnnstreamError

    from .commands import _seeds
    from .run import parse_overrides

    started = time.perf_counter()
    if not Path(args.config).is_file():
        raise RnnstreamError(f"-c {args.config}: no such file")
    overrides = parse_overrides(args.set)
    cfg = detector_config(args.config, args.detector, overrides)
    naive = None
    if not args.no_naive and cfg.model.type != "naive":
        naive = detector_config(args.config, args.detector, {**overrides, "model": {"type": "naive"}})
    seeds = [0, 1, 2] if args.seeds is None else [s for s in _seeds(args.seeds) if s is not None]
    families = FAMILIES if args.family == "all" else (args.family,)
    print(f"config {args.config} detector {cfg.name!r} (features set to each scenario's columns), "
          f"overrides {overrides or 'none'}, model {cfg.model.type}")
    raw = []
    for fam in families:
        reports = []
        for seed in seeds:
            rep = run(fam, seed, cfg, naive)
            print(format_report(rep), end="", file=sys.stdout if args.verbose else sys.stderr)
            reports.append(rep)
            raw.append({"family": fam, "seed": seed, "variant": rep.variant, "figures": rep.figures(),
                        "anomalies": [vars(a) for a in rep.anomalies]})
        print(_summary(reports), end="")
    print(f"{time.perf_counter() - started:.1f}s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1, default=float) + "\n")
    return 0


EXAMPLES = ("rnnstream eval scenarios                       # config/example.yaml, scenario seeds 0,1,2",
            "rnnstream eval scenarios -c config/nab.yaml --seeds 0,1,2,3,4,5",
            "rnnstream eval scenarios --set 'model={type: naive}' --family sensors -v")


def register(evsub) -> None:
    """Add ``scenarios`` under ``rnnstream eval``."""
    import argparse

    q = evsub.add_parser("scenarios", help="the behaviour scenarios: a multi-host SRE stream and an 8-sensor test bed",
                         description="Generate the seeded scenarios (rnnstream/evaluation/scenarios.py), score them "
                                     "causally with a fresh detector per stream, and report per injected anomaly "
                                     "what was published, its peak score, delay, kind and blamed features, and "
                                     "the false alarms per 10,000 events.",
                         epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("-c", "--config", default="config/example.yaml",
                   help="detector configuration (default config/example.yaml, the shipped defaults)")
    q.add_argument("--detector", help="detector name (default: the first)")
    q.add_argument("--set", action="append", metavar="PATH=YAML",
                   help="override a detector setting, e.g. --set model='{type: naive}' (repeatable)")
    q.add_argument("--seeds", help="scenario seeds (each a variant), default 0,1,2; the model seed is the config's")
    q.add_argument("--family", choices=("all",) + FAMILIES, default="all", help="which scenarios (default all)")
    q.add_argument("--no-naive", action="store_true", help="skip the comparison with naive persistence")
    q.add_argument("-v", "--verbose", action="store_true", help="per-scenario tables on stdout (default: stderr)")
    q.add_argument("--json", help="write every outcome to this file")
    q.set_defaults(func=cmd_scenarios)
