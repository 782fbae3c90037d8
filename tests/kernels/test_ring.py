"""The compact history ring: windows cut from it are, bit for bit, the inputs the step kernels fed."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.detector import REASON_LATE, Detector
from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.kernels.ring import flags_by_position, stored_inputs
from rnnstream.models.base import BatchOutput, common_fields, create
from rnnstream.state.slots import POOL_ROW, dense_arrays
from rnnstream.training.windows import harvest_windows

YAML = """
detectors:
  - name: d
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    model: {{type: {model}, seed: 2{extra}}}
    late_tolerance_seconds: 100
    idle_ttl_seconds: 50000
    training: {{enabled: false, window: {window}, min_events: {window}}}
    time_features: {{time_of_day: {tod}, day_of_week: {tod}, log_gap: true, daily_profile_bins: {bins}}}
    scoring: {{warmup_events: 5, threshold: 0.3}}
"""
EXTRA = {"gru": ", hidden: 5", "esn": ", size: 12", "naive": ""}


def _stream(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ents = [f"e{i}" for i in rng.integers(0, 3, n)]
    ts = 1.7e9 + np.cumsum(rng.exponential(700.0, n))
    ts[rng.random(n) < 0.05] -= 300.0        # late beyond the 100 s tolerance: refused, never in a ring
    ts[rng.random(n) < 0.05] -= 50.0         # a little out of order: accepted, gap 0
    ts[n // 2:] += 2e5 * (np.array(ents[n // 2:]) == "e1")   # e1 silent past the TTL: it starts afresh
    x = rng.standard_normal((n, 2)) * [1.0, 30.0] + [5.0, 1e6]
    x[rng.random(n) < 0.03] += 50.0
    return ents, x, ts


@pytest.mark.parametrize("model", ["gru", "esn", "naive"])
@pytest.mark.parametrize("window,bins,tod", [(8, 0, "true"), (13, 24, "true"), (16, 6, "false")])
def test_windows_are_the_inputs_the_kernel_fed(model, window, bins, tod):
    cfg = load_config(YAML.format(model=model, extra=EXTRA[model], window=window, bins=bins, tod=tod)).detectors[0]
    det = Detector(cfg)
    fed: dict[str, list[np.ndarray]] = {}
    flagged: dict[str, list[bool]] = {}
    ents, x, ts = _stream(600)
    late = 0
    try:
        for i in range(len(ents)):   # one event a call: the model's input scratch then holds its input
            res = det.process(ents[i:i + 1], x[i:i + 1], ts[i:i + 1])
            if res.rejected:
                assert res.rejected[0][1] == REASON_LATE
                late += 1
                continue
            slot = det.state.index[ents[i]]
            if det.state["count"][slot] == 1:   # first event, or afresh after the TTL
                fed[ents[i]], flagged[ents[i]] = [], []
            fed[ents[i]].append(det.model._u.copy())
            flagged[ents[i]].append(bool(res.flag[0] & 1))
        assert late > 0 and len(fed["e1"]) < 150 and any(any(f) for f in flagged.values())
        assert det.state["ring_in"].shape[2] == stored_inputs(2, bins) < det.model.n_inputs
        for name, inputs in fed.items():
            slot = np.array([det.state.index[name]])
            got = harvest_windows(det.state.arrays, slot, det.kp, 2, det.model.n_inputs, False)
            assert got.shape == (1, window, det.model.n_inputs)
            assert got[0].tobytes() == np.array(inputs[-window:]).tobytes(), name
            count = int(det.state["count"][slot[0]])
            bits = flags_by_position(det.state["ring_flag"][det.state.pool_rows(slot)[0]], window)
            assert [bits[e % window] for e in range(count - window, count)] == flagged[name][-window:]
            clean = harvest_windows(det.state.arrays, slot, det.kp, 2, det.model.n_inputs, True)
            assert len(clean) == (0 if any(flagged[name][-window:]) else 1)
    finally:
        det.close()


@pytest.mark.parametrize("model", ["gru", "gru:2", "lstm", "esn", "naive"])
def test_an_entity_without_a_ring_is_scored_alike_and_writes_no_ring(model):
    """``pool_row`` 0: the kernels score the entity exactly as one with a ring, and touch no ring row."""
    from rnnstream.config.model_params import MODEL_PARAMS

    type_name, _, layers = model.partition(":")
    params = {"gru": {"hidden": 5}, "lstm": {"hidden": 5}, "esn": {"size": 12}}.get(type_name, {})
    params = MODEL_PARAMS[type_name](**params, **({"layers": int(layers)} if layers else {}))
    f, bins, w = 2, 6, 8
    d = f + n_time_features(True, True, True, bins, f)
    m = create(type_name, f, d, params)
    state = dense_arrays({**common_fields(f, d, w, bins), **m.state_fields()}, 3)
    state[POOL_ROW][:] = [1, 0, 0]                # slot 0 keeps ring row 0, slot 1 none
    kp = kernel_params(True, True, True, bins, warmup_events=5, threshold=0.2, suppress_events=0)
    ents, x, ts = _stream(200, seed=3)
    ts = np.sort(ts)
    outs = []
    for slot in (0, 1):
        out = BatchOutput.allocate(len(ts), f)
        m.step(state, np.full(len(ts), slot, dtype=np.int64), x, ts, kp, out)
        outs.append(np.column_stack([out.pred, out.z, out.err, out.score, out.flag]))
    assert outs[0].tobytes() == outs[1].tobytes()
    assert outs[0][:, -1].any()                   # some events were flagged (their bits were written)
    for k in ("ring_in", "ring_t", "ring_flag"):
        assert not state[k][1:].any(), k
    assert state["ring_in"][0].any() and state["ring_t"][0].any()
    for k in state:
        if k not in ("ring_in", "ring_t", "ring_flag", POOL_ROW):
            assert state[k][0].tobytes() == state[k][1].tobytes(), k
    assert harvest_windows(state, np.array([0, 1]), kp, f, d, False).shape == (1, w, d)
