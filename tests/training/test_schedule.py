"""Retraining schedule: triggers at fixed event counts, deterministic weights, background swaps, failures."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.detector import Detector
from rnnstream.kernels.params import kernel_params
from rnnstream.state.slots import dense_arrays
from rnnstream.training.windows import WindowBuffer, harvest_windows

ROOT_NAB = Path(__file__).resolve().parents[2] / "config" / "nab.yaml"

YAML = """
detectors:
  - name: test
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [cpu, mem]
    model: {{type: {model}, {model_params}}}
    training:
      background: {background}
      skip_when_busy: {skip}
      every_events: 60
      every_seconds: 1.0e9
      min_events: 40
      window: 8
      batch_windows: 6
      buffer_windows: 12
      steps: 4
      exclude_anomalies: {exclude}
    scoring: {{warmup_events: 10, short_window: 4, long_window: 100}}
"""

PARAMS = {"gru": "hidden: 6, seed: 3", "esn": "size: 16, seed: 3", "naive": "seed: 0"}


def _cfg(model="gru", background=False, exclude=True, skip=False):
    text = YAML.format(model=model, model_params=PARAMS[model], background=str(background).lower(),
                       exclude=str(exclude).lower(), skip=str(skip).lower())
    return load_config(text).detectors[0]


def _stream(n=700, n_entities=6, seed=0):
    rng = np.random.default_rng(seed)
    ents = rng.integers(0, n_entities, n)
    # Entities 4 and 5 appear only late, so "entities seen since the last trigger" matters.
    ents[: n // 2][ents[: n // 2] >= 4] = 0
    ts = 1.7e9 + np.cumsum(rng.exponential(30.0, n))
    x = np.stack([np.sin(ts / 600.0) + ents, np.cos(ts / 900.0)], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return [f"h{e}" for e in ents], x, ts


def _run(cfg, batch, stream=None, **kw):
    ents, x, ts = stream or _stream()
    det = Detector(cfg, **kw)
    outs, versions = [], []
    try:
        for lo in range(0, len(ents), batch):
            res = det.process(ents[lo:lo + batch], x[lo:lo + batch], ts[lo:lo + batch])
            outs.append(np.column_stack([res.pred, res.z, res.err, res.score, res.flag]).copy())
            versions += res.model_version.tolist()
        det.training.collect(wait=True)
    finally:
        det.close()
    return np.concatenate(outs), det, versions


@pytest.mark.parametrize("model", ["gru", "esn"])
def test_inline_outputs_and_weights_independent_of_batch_size(model):
    cfg = _cfg(model)
    ref_out, ref_det, _ = _run(cfg, 1)
    assert ref_det.training.stats.runs_ok == ref_det.training.k >= 10  # (700 - 40) / 60 + 1 triggers
    assert ref_det.model.version == ref_det.training.k
    for batch in (7, 1000):
        out, det, _ = _run(cfg, batch)
        assert out.tobytes() == ref_out.tobytes(), f"batch={batch}"
        assert det.training.k == ref_det.training.k
        for name, w in ref_det.model.weights.items():
            assert det.model.weights[name].tobytes() == w.tobytes(), (batch, name)
        assert det.training.buffer.data.tobytes() == ref_det.training.buffer.data.tobytes()


def test_training_changes_the_outputs():
    """Guards the test above: the weights in force do matter for the outputs."""
    on, _, _ = _run(_cfg("gru"), 1000)
    cfg = _cfg("gru")
    import dataclasses
    off, _, _ = _run(dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, enabled=False)), 1000)
    assert on.shape == off.shape and not np.array_equal(on, off)
    assert np.array_equal(on[:40], off[:40])  # identical before the first trigger


def test_inline_swaps_weights_at_the_trigger_event():
    _, det, versions = _run(_cfg("gru"), 1)   # batch 1: a result's model_version is its event's
    i = np.arange(len(versions))
    # min_events 40, every_events 60: triggers before events 40, 100, 160, ...; each fit in force at once.
    want = np.where(i < 40, 0, (i - 40) // 60 + 1)
    np.testing.assert_array_equal(versions, want)


def test_background_identical_across_batchings_and_never_mutates_weights_during_step():
    cfg = _cfg("gru", background=True)
    results = []
    for batch in (1, 7, 1000):
        det_holder = {}
        ents, x, ts = _stream()
        det = Detector(cfg)
        assert det.training.background
        det_holder["det"] = det
        original_step = det.model.step
        checks = {"steps": 0}

        def guarded_step(*args, _det=det, _orig=original_step, **kwargs):
            before = _det.model.weights
            copies = {k: v.copy() for k, v in before.items()}
            _orig(*args, **kwargs)
            assert _det.model.weights is before
            for k, v in copies.items():
                assert np.array_equal(before[k], v), k
            checks["steps"] += 1

        det.model.step = guarded_step
        outs = []
        for lo in range(0, len(ents), batch):
            res = det.process(ents[lo:lo + batch], x[lo:lo + batch], ts[lo:lo + batch])
            outs.append(np.column_stack([res.pred, res.z, res.err, res.score, res.flag, res.model_version]).copy())
        det.training.collect(wait=True)
        det.close()
        assert checks["steps"] > 0 and det.training.stats.runs_ok == det.training.k >= 10
        results.append((np.concatenate(outs), {k: v.copy() for k, v in det.model.weights.items()}))
    ref_out, ref_w = results[0]
    for out, w in results[1:]:
        # Model versions are per batch, so compare outputs without that column, then the weights.
        assert out[:, :-1].tobytes() == ref_out[:, :-1].tobytes()
        assert all(w[k].tobytes() == ref_w[k].tobytes() for k in ref_w)


def test_background_result_takes_effect_at_the_next_trigger():
    import dataclasses

    cfg = _cfg("gru", background=True)
    frozen = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, enabled=False))
    untrained, _, _ = _run(frozen, 1000)
    background, _, versions = _run(cfg, 1)
    # The fit started at event 40 is put in force at the next trigger (event 100), not before.
    assert np.array_equal(untrained[:100], background[:100])
    assert not np.array_equal(untrained[100:160], background[100:160])
    i = np.arange(len(versions))
    np.testing.assert_array_equal(versions, np.where(i < 100, 0, (i - 40) // 60))


def test_background_trigger_never_waits_for_a_running_fit_it_is_skipped_and_counted():
    """A fit held back by the test: the triggers that come due meanwhile are skipped (scoring goes on
    without waiting), the next trigger after the fit ends puts it in force and starts the next fit
    on every entity seen since the last trigger that ran."""
    cfg = _cfg("gru", background=True, skip=True)
    ents, x, ts = _stream()
    det = Detector(cfg)
    release, started = threading.Event(), []
    real_fit = det.model.fit
    skips = []
    det.training.on_skip = lambda: skips.append(det.training.events)

    def held_fit(weights, opt_state, windows, training):
        started.append(len(windows))
        if len(started) == 1:
            assert release.wait(30), "the test never released the fit"
        return real_fit(weights, opt_state, windows, training)

    det.model.fit = held_fit
    try:
        det.process(ents[:300], x[:300], ts[:300])   # triggers at 40 (fit held), 100, 160, 220, 280
        assert len(started) == 1 and det.training.k == 1 and det.model.version == 0
        assert det.training.stats.runs_skipped == 4 and skips == [100, 160, 220, 280]
        assert det.training.next_at == 340
        assert det.training.seen_seq == 40   # coalesced: the next fit cuts from everyone seen since event 40
        release.set()
        det.training._pending.result(timeout=30)
        det.process(ents[300:340], x[300:340], ts[300:340])
        assert det.model.version == 0                  # finished, but in force only at the next trigger
        res = det.process(ents[340:341], x[340:341], ts[340:341])
        assert det.model.version == 1 == res.model_version[0] and det.training.k == 2
        assert det.training.stats.runs_ok == 1 and det.training.stats.runs_skipped == 4
        assert det.training.seen_seq == 340
        det.training.collect(wait=True)
        assert len(started) == 2
    finally:
        release.set()
        det.close()


def test_background_without_skipping_waits_for_the_fit():
    cfg = _cfg("gru", background=True, skip=False)
    ents, x, ts = _stream()
    det = Detector(cfg)
    real_fit = det.model.fit
    det.model.fit = lambda *a: (threading.Event().wait(0.05), real_fit(*a))[1]
    try:
        det.process(ents[:300], x[:300], ts[:300])
        assert det.training.stats.runs_skipped == 0 and det.model.version == det.training.k - 1 == 4
    finally:
        det.close()


def test_failing_fit_keeps_old_weights_and_counts_a_failure(caplog):
    cfg = _cfg("gru")
    ents, x, ts = _stream()
    det = Detector(cfg, background=False)
    initial = {k: v.copy() for k, v in det.model.weights.items()}
    calls = []

    def broken_fit(*args, **kwargs):
        calls.append(threading.get_ident())
        raise FloatingPointError("boom")

    det.model.fit = broken_fit
    res = det.process(ents, x, ts)
    det.close()
    assert calls and det.training.stats.runs_failed == len(calls) and det.training.stats.runs_ok == 0
    assert det.model.version == 0 and not res.model_version.any()
    assert all(np.array_equal(det.model.weights[k], v) for k, v in initial.items())
    assert np.all(np.isfinite(res.score)) and len(res.index) == len(ents)
    assert "training failed" in caplog.text


def test_non_finite_fit_result_is_dropped():
    cfg = _cfg("gru")
    ents, x, ts = _stream()
    det = Detector(cfg, background=False)
    real_fit = det.model.fit

    def nan_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        result.weights["w_o"][0, 0] = np.nan
        return result

    det.model.fit = nan_fit
    det.process(ents, x, ts)
    det.close()
    assert det.training.stats.runs_failed > 0 and det.training.stats.runs_ok == 0 and det.model.version == 0


# --- windows ----------------------------------------------------------------------------------------

def _rings(n_slots=4, w=5, f=2):
    """Rings written as the step kernels write them: event k of slot s has input 100 s + k."""
    from rnnstream.kernels.ring import finish_event
    from rnnstream.models.base import common_fields

    count_of = [3, 5, 12, 7][:n_slots]
    state = dense_arrays(common_fields(f, f, w), n_slots)
    kp = kernel_params(False, False, False)
    for s in range(n_slots):
        for k in range(count_of[s]):
            u = np.full(f, 100 * s + k, dtype=np.float32)
            finish_event(s, 1.7e9 + k, u, f, 0, state["count"], state["last_ts"], state["pool_row"],
                         state["ring_in"], state["ring_t"], state["ring_flag"])
    return state, kp


def _flag(state, s, k):
    """Mark slot s's event k as an anomaly, as finish_event would have."""
    p = k % state["ring_in"].shape[1]
    state["ring_flag"][s, p >> 3] |= 1 << (p & 7)


def test_harvest_unrolls_oldest_first_and_skips_partial_rings():
    state, kp = _rings()
    got = harvest_windows(state, np.arange(4), kp, 2, 2, exclude_anomalies=True)
    assert got.shape == (3, 5, 2)   # slot 0 has only 3 events
    np.testing.assert_array_equal(got[:, :, 0], [[100, 101, 102, 103, 104], [207, 208, 209, 210, 211],
                                                 [302, 303, 304, 305, 306]])


def test_windows_with_anomaly_flags_excluded_only_when_asked():
    state, kp = _rings()
    _flag(state, 2, 8)     # slot 2's window (events 7..11) contains an anomaly
    _flag(state, 0, 0)     # irrelevant: slot 0's ring is not full
    clean = harvest_windows(state, np.arange(4), kp, 2, 2, exclude_anomalies=True)
    assert clean[:, 0, 0].tolist() == [100, 302]
    everything = harvest_windows(state, np.arange(4), kp, 2, 2, exclude_anomalies=False)
    assert everything[:, 0, 0].tolist() == [100, 207, 302]


def test_schedule_excludes_anomalous_windows():
    """Through the detector: with exclude_anomalies the buffer holds no window with an anomaly flag."""
    import dataclasses

    for exclude in (True, False):
        cfg = _cfg("naive", exclude=exclude)
        cfg = dataclasses.replace(cfg, scoring=dataclasses.replace(cfg.scoring, threshold=0.0, suppress_events=0))
        ents, x, ts = _stream()
        det = Detector(cfg, background=False)
        seen: list[np.ndarray] = []
        det.model.fit = lambda w, o, windows, t, _seen=seen: (_seen.append(windows.copy()), det.model.__class__.fit(det.model, w, o, windows, t))[1]
        det.process(ents, x, ts)
        det.close()
        # threshold 0: every scored event (after warm-up) is an anomaly, so every full ring has one.
        assert (sum(len(b) for b in seen) == 0) == exclude


def test_window_buffer_reservoir_is_seeded_and_bounded():
    a, b = WindowBuffer(4, 3, 2), WindowBuffer(4, 3, 2)
    wins = np.arange(10 * 3 * 2, dtype=np.float32).reshape(10, 3, 2)
    a.add(wins, np.random.default_rng([0, 1]))
    b.add(wins, np.random.default_rng([0, 1]))
    assert a.size == 4 and a.offered == 10 and np.array_equal(a.data, b.data)
    sample = a.sample(6, np.random.default_rng(0), newest=wins[:2])
    assert len(sample) == 6 and np.array_equal(sample[:2], wins[:2])
    restored = WindowBuffer(4, 3, 2)
    restored.load_snapshot(a.snapshot())
    assert restored.size == a.size and restored.offered == a.offered and np.array_equal(restored.data, a.data)


def test_time_triggers_never_retrain_more_often_than_once_per_window_of_events():
    """The defaults (every 300 s) on 5-minute data: once per `window` events, not at every event."""
    text = YAML.format(model="naive", model_params=PARAMS["naive"], background="false", exclude="true", skip="false")
    text = text.replace("every_events: 60", "every_events: 1000000").replace("every_seconds: 1.0e9", "every_seconds: 300")
    det = Detector(load_config(text).detectors[0])
    try:
        n = 400
        ts = 1.7e9 + 300.0 * np.arange(n)
        det.process(["h"] * n, np.random.default_rng(0).normal(size=(n, 2)), ts)
        k = det.training.k
        assert 1 + (n - 40) // 8 - 1 <= k <= 1 + (n - 40) // 8   # min_events 40, then one per 8 events
    finally:
        det.close()


def test_background_fit_runs_at_a_lower_priority_than_scoring():
    import os
    import sys

    from rnnstream.training.schedule import TRAINER_NICE

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread priorities are set on Linux only")
    det = Detector(_cfg("gru", background=True))
    try:
        def nice_of_this_thread():
            return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        own = nice_of_this_thread()
        got = det.training._pool.submit(nice_of_this_thread).result(timeout=30)
        assert got == min(own + TRAINER_NICE, 19) and nice_of_this_thread() == own
    finally:
        det.close()


def _hold_fits(det: Detector) -> threading.Event:
    """Make ``det``'s fits wait (at most 30 s) until the returned event is set."""
    release = threading.Event()
    real_fit = det.model.fit
    det.model.fit = lambda *a: (release.wait(30), real_fit(*a))[1]
    return release


def test_snapshot_never_waits_for_a_running_fit_and_restore_runs_it_again():
    """A snapshot taken while the fit is held: it returns at once with the fit's windows; a detector
    restored from it puts the same weights in force at the same trigger as the original."""
    cfg = _cfg("gru", background=True, skip=False)
    ents, x, ts = _stream()
    det = Detector(cfg)
    release = _hold_fits(det)
    try:
        det.process(ents[:50], x[:50], ts[:50])          # trigger at 40: the fit is held
        arrays, meta = det.snapshot()                   # must not wait for it
        assert meta["training"]["pending"] == "running" and arrays["pending.batch"].ndim == 3
        release.set()
        det.process(ents[50:101], x[50:101], ts[50:101])  # trigger at 100: the fit goes in force
        want = {k: v.copy() for k, v in det.model.weights.items()}
        assert det.model.version == 1
    finally:
        release.set()
        det.close()
    back = Detector(cfg)
    try:
        back.restore(arrays, meta)
        back.process(ents[50:101], x[50:101], ts[50:101])
        assert back.model.version == 1
        assert all(back.model.weights[k].tobytes() == v.tobytes() for k, v in want.items())
    finally:
        back.close()
    inline = Detector(cfg, background=False)   # e.g. `rnnstream reproduce`: the fit is run at restore
    try:
        inline.restore(arrays, meta)
        result = inline.training._pending.result(timeout=0)
        assert all(result.weights[k].tobytes() == v.tobytes() for k, v in want.items())
    finally:
        inline.close()


def test_the_arrays_version_changes_when_a_running_fit_finishes():
    """A changelog writer rewrites the shard's arrays only when ``arrays_version`` changes: the arrays
    of a running fit (its windows) and of a finished one (its result) differ, so must the version."""
    cfg = _cfg("gru", background=True, skip=False)
    ents, x, ts = _stream()
    det = Detector(cfg)
    release = _hold_fits(det)
    try:
        det.process(ents[:50], x[:50], ts[:50])          # trigger at 40: the fit is held
        running = det.arrays_version()
        assert det.snapshot(entities=False)[1]["training"]["pending"] == "running"
        release.set()
        wait_for = time.monotonic() + 30
        while det.snapshot(entities=False)[1]["training"]["pending"] == "running" and time.monotonic() < wait_for:
            time.sleep(0.01)
        arrays, meta = det.snapshot(entities=False)
        assert meta["training"]["pending"] == "ok" and "pending.loss" in arrays
        assert det.arrays_version() != running
    finally:
        release.set()
        det.close()


def test_spacing_keeps_training_work_within_the_budget_per_event_of_an_average_entity():
    from types import SimpleNamespace

    from rnnstream.training.schedule import spacing

    tr = SimpleNamespace(steps=10, budget=100.0)
    # 10 steps x 16 windows x 128 events = 20,480 window-steps; one entity: 205 events to the next fit.
    assert spacing(tr, 16, 128, 1) == 205
    assert spacing(tr, 16, 128, 0) == 205          # no entity seen counts as one
    assert spacing(tr, 16, 128, 3) == 615          # three entities: each needs 205 new events on average
    assert spacing(tr, 4, 128, 1) == 52            # a smaller batch costs less
    assert spacing(tr, 0, 128, 5) == 0             # nothing trained, nothing to wait for
    assert spacing(SimpleNamespace(steps=10, budget=0.0), 16, 128, 3) == 0   # 0 = no limit


def _budget_cfg(budget):
    # every window is trained on (none kept out for an anomaly), so a fit's cost depends on the stream's
    # length alone, not on what the scorer flags
    cfg = _cfg("gru", exclude=False)
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, budget=budget))


def test_the_budget_spaces_retrainings_deterministically():
    """4 steps x 6 windows x 8 events = 192 window-steps a full fit (the first, with 4 full rings, 128);
    with a budget of 0.4 window-steps per event of an average entity and at least 4 entities between
    triggers, a fit waits at least 128 x 4 / 0.4 = 1,280 events (every_events is 60). The outputs stay
    independent of the batching."""
    stream = _stream(n=6000)
    ref_out, ref_det, versions = _run(_budget_cfg(0.4), 1, stream)
    starts = np.flatnonzero(np.diff(np.asarray(versions))) + 1     # the events at which new weights came
    assert starts[0] == 40 and len(starts) == ref_det.training.k >= 3
    assert np.all(np.diff(starts) >= 1280)
    free, free_det, _ = _run(_budget_cfg(0.0), 1, stream)
    assert free_det.training.k > 5 * ref_det.training.k               # every 60 events without the budget
    out, det, _ = _run(_budget_cfg(0.4), 777, stream)
    assert out.tobytes() == ref_out.tobytes() and det.training.k == ref_det.training.k


def test_nab_yaml_budget_leaves_a_few_entities_retrained_at_every_events():
    """nab.yaml's schedule (6 steps x 4 windows x 128 events every 128 events) with up to 3 entities
    is within its budget: its triggers are not moved; the default budget would space them from three
    entities on (the generated corpus has several per stream). Fresh
    windows follow each other without a gap (every_events <= window): every event is trained on
    (spaced wider, NAB's standard score fell 3-4 points at seed 0)."""
    from rnnstream.config.schema import TrainingConfig
    from rnnstream.training.schedule import spacing

    tr = load_config(ROOT_NAB.read_text()).detectors[0].training
    assert (tr.steps, tr.batch_windows, tr.window, tr.every_events) == (6, 4, 128, 128)
    assert tr.every_events <= tr.window and tr.every_seconds == 0
    assert spacing(tr, tr.batch_windows, tr.window, 3) <= tr.every_events
    default = dataclasses.replace(tr, budget=TrainingConfig().budget)
    assert spacing(default, tr.batch_windows, tr.window, 3) > tr.every_events


def test_nab_yaml_retrains_every_window_of_one_entity_and_its_outputs_do_not_depend_on_batching():
    """One entity through nab.yaml's detector: once its ring holds a clean window (the first holds the
    alarms of the series' first rise past its seen range), a fit every 128 events, the same outputs and weights
    whatever the micro-batch size."""
    cfg = load_config(ROOT_NAB.read_text()).detectors[0]
    rng = np.random.default_rng(0)
    n = 128 * 6 + 5
    ts = 1.7e9 + 300.0 * np.arange(n)
    x = (np.sin(ts / 7200.0) + 0.1 * rng.standard_normal(n)).reshape(n, 1)
    stream = (["one"] * n, x, ts)
    ref_out, ref_det, versions = _run(cfg, 1, stream)
    starts = np.flatnonzero(np.diff(np.asarray(versions))) + 1
    assert starts.tolist() == [128 * k for k in range(2, 7)] and ref_det.training.k == 6
    out, det, _ = _run(cfg, 100, stream)
    assert out.tobytes() == ref_out.tobytes()
    for k, w in ref_det.model.weights.items():
        np.testing.assert_array_equal(det.model.weights[k], w)


def test_the_default_budget_spaces_the_defaults_fits_at_a_thousand_entities():
    """At the defaults (20 steps x 32 windows x 64 events), 1,000 entities wait at least 200 events each
    between fits: the training work stays at most the budget's window-steps per event."""
    from rnnstream.config.schema import TrainingConfig
    from rnnstream.training.schedule import spacing

    tr = TrainingConfig()
    cost = tr.steps * tr.batch_windows * tr.window
    assert spacing(tr, tr.batch_windows, tr.window, 1000) >= 1000 * cost / tr.budget >= 200_000


def test_a_restored_schedule_keeps_the_budget_gap_and_older_snapshots_restore():
    """Restarted mid-stream (a time trigger's gap comes from the budget too), the restored detector
    retrains at the same events and its outputs continue bit for bit; a snapshot from before the
    budget (no "gap") restores with no gap."""
    import dataclasses

    cfg = _budget_cfg(0.4)
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, every_seconds=600.0))
    ents, x, ts = _stream(n=4000)
    whole, split, back = Detector(cfg), Detector(cfg), Detector(cfg)
    try:
        want = whole.process(ents, x, ts).score.copy()
        head = split.process(ents[:1500], x[:1500], ts[:1500]).score.copy()
        arrays, meta = split.snapshot()
        assert meta["training"]["gap"] >= 1280
        back.restore(arrays, meta)
        tail = back.process(ents[1500:], x[1500:], ts[1500:]).score.copy()
        np.testing.assert_array_equal(np.concatenate([head, tail]), want)
        assert back.training.k == whole.training.k and back.model.version == whole.model.version
        del meta["training"]["gap"]
        old = Detector(cfg)
        try:
            old.restore(arrays, meta)
            assert old.training.gap == 0
        finally:
            old.close()
    finally:
        for det in (whole, split, back):
            det.close()
