"""The ESN step kernel against the numpy reference, determinism, persistence start, robustness."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.models.esn import ESN
from rnnstream.models.esn.kernel import GROUP
from rnnstream.models.esn.reference import reference_step, reference_step_float64

OUT_FIELDS = ("pred", "z", "err", "score", "flag")


def randomise_readout(model: ESN, seed: int) -> None:
    """A non-trivial readout, so that the prediction depends on the reservoir state."""
    rng = np.random.default_rng(seed)
    w = model.weights["w_out"]
    model.weights["w_out"] = (w + rng.normal(0.0, 0.2, w.shape)).astype(np.float32)


@pytest.mark.parametrize("size,n_features,n_slots", [(37, 2, 11), (64, 1, 11), (50, 1, 3 * GROUP + 5)])
def test_kernel_matches_reference_bit_for_bit_over_consecutive_batches(
        make_model, make_state, kp, random_batches, new_output, size, n_features, n_slots):
    """Few slots: groups closed early by a repeated entity; many: full groups and a partial tail."""
    model = make_model(n_features, n_features + 5, size=size, seed=3)
    randomise_readout(model, 1)
    s_kernel = make_state(model, n_slots)
    s_ref = make_state(model, n_slots)
    flagged = 0
    for slots, x, ts in random_batches(4, 150, n_slots, n_features, seed=size):
        o_kernel = new_output(len(slots), n_features)
        o_ref = new_output(len(slots), n_features)
        model.step(s_kernel, slots, x, ts, kp, o_kernel)
        reference_step(s_ref, model.weights, model.params.leak_rate, slots, x, ts, kp, o_ref)
        for name in OUT_FIELDS:
            np.testing.assert_array_equal(getattr(o_kernel, name), getattr(o_ref, name), err_msg=name)
        flagged += int(np.count_nonzero(o_kernel.flag))
        for name in s_kernel:
            np.testing.assert_array_equal(s_kernel[name], s_ref[name], err_msg=name)
    assert np.any(s_kernel["r"] != 0.0)
    assert flagged > 0, "the batches should exercise the anomaly/suppression paths"


def test_float32_kernel_stays_close_to_the_float64_model(make_model, make_state, kp, random_batches,
                                                         new_output):
    model = make_model(2, 7, size=60, seed=4)
    randomise_readout(model, 2)
    s_kernel, s_ref = make_state(model, 9), make_state(model, 9)
    for slots, x, ts in random_batches(4, 150, 9, 2, seed=8):
        o_kernel, o_ref = new_output(len(slots), 2), new_output(len(slots), 2)
        model.step(s_kernel, slots, x, ts, kp, o_kernel)
        reference_step_float64(s_ref, model.weights, model.params.leak_rate, slots, x, ts, kp, o_ref)
        np.testing.assert_allclose(s_kernel["r"], s_ref["r"], rtol=0, atol=2e-5)
        np.testing.assert_allclose(s_kernel["pred"], s_ref["pred"], rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(o_kernel.score, o_ref.score, rtol=1e-3, atol=1e-4)
    assert np.max(np.abs(s_kernel["r"])) > 0.1


def test_results_do_not_depend_on_batching_or_other_entities(make_model, make_state, kp, random_batches,
                                                             new_output):
    """Grouping follows the batch boundaries and the other entities' events; no result may."""
    model = make_model(1, 6, size=48, seed=6)
    randomise_readout(model, 5)
    n_slots = 2 * GROUP + 3
    (slots, x, ts), = random_batches(1, 600, n_slots, 1, seed=9)
    whole, split = make_state(model, n_slots), make_state(model, n_slots)
    o_whole = new_output(len(slots), 1)
    model.step(whole, slots, x, ts, kp, o_whole)
    cuts = [0, 1, 2, 50, 51, 230, 600]
    for a, b in zip(cuts[:-1], cuts[1:]):
        o = new_output(b - a, 1)
        model.step(split, slots[a:b], x[a:b], ts[a:b], kp, o)
        np.testing.assert_array_equal(o.pred, o_whole.pred[a:b])
        np.testing.assert_array_equal(o.score, o_whole.score[a:b])
    np.testing.assert_array_equal(split["r"], whole["r"])
    # entity 0 alone, one event per call, against entity 0 inside the interleaved stream
    alone = make_state(model, n_slots)
    mine = np.flatnonzero(slots == 0)
    for i in mine:
        o = new_output(1, 1)
        model.step(alone, slots[i:i + 1], x[i:i + 1], ts[i:i + 1], kp, o)
        assert o.pred[0, 0] == o_whole.pred[i, 0]
    np.testing.assert_array_equal(alone["r"][0], whole["r"][0])


def test_untrained_model_is_a_persistence_forecaster(make_model, make_state, kp, random_batches,
                                                     new_output):
    model = make_model(2, 7, size=32)
    state = make_state(model, 5)
    (slots, x, ts), = random_batches(1, 60, 5, 2, seed=4)
    out = new_output(len(slots), 2)
    model.step(state, slots, x, ts, kp, out)
    for s in np.unique(slots):
        last = np.flatnonzero(slots == s)[-1]
        np.testing.assert_array_equal(state["pred"][s], out.z[last].astype(np.float32))


def test_same_seed_same_outputs_and_different_seed_differs(make_model, make_state, kp, random_batches,
                                                           new_output):
    batches = random_batches(2, 100, 7, 2, seed=5)
    results = []
    for seed in (9, 9, 10):
        model = make_model(2, 7, size=40, seed=seed)
        randomise_readout(model, 2)
        state = make_state(model, 7)
        for slots, x, ts in batches:
            out = new_output(len(slots), 2)
            model.step(state, slots, x, ts, kp, out)
        results.append((out.pred.copy(), state["r"].copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert not np.array_equal(results[0][1], results[2][1])


def test_extreme_inputs_stay_finite(make_model, make_state, kp, new_output):
    model = make_model(1, 6, size=24)
    randomise_readout(model, 3)
    state = make_state(model, 2)
    n = 400
    slots = np.arange(n, dtype=np.int64) % 2
    ts = 1.7e9 + np.arange(n, dtype=np.float64)
    x = np.where(slots[:, None] == 0, 3.0, 1e12 * (-1.0) ** np.arange(n)[:, None])  # constant vs wild
    x[200:, 0] = np.where(slots[200:] == 0, 1e30, -1e30)
    out = new_output(n, 1)
    model.step(state, slots, x, ts, kp, out)
    for name in OUT_FIELDS:
        assert np.all(np.isfinite(getattr(out, name))), name
    assert np.all(np.abs(state["r"]) <= 1.0)
    assert np.all((out.score >= 0.0) & (out.score <= 1.0))


def test_load_snapshot_puts_the_loaded_reservoir_in_force(make_model, make_state, kp, random_batches,
                                                          new_output):
    (slots, x, ts), = random_batches(1, 80, 4, 2, seed=6)
    a, b = make_model(2, 7, size=20, seed=1), make_model(2, 7, size=20, seed=2)
    randomise_readout(a, 4)
    randomise_readout(b, 4)
    state_a, state_b = make_state(a, 4), make_state(b, 4)
    out_a, out_b = new_output(80, 2), new_output(80, 2)
    a.step(state_a, slots, x, ts, kp, out_a)          # a's transposed-weight cache now holds seed 1
    a.load_snapshot(b.snapshot())
    state_a = make_state(a, 4)
    a.step(state_a, slots, x, ts, kp, out_a)
    b.step(state_b, slots, x, ts, kp, out_b)
    np.testing.assert_array_equal(out_a.pred, out_b.pred)
    np.testing.assert_array_equal(state_a["r"], state_b["r"])


def test_ring_holds_the_model_inputs(make_model, make_state, kp, new_output):
    model = make_model(1, 6, size=16)
    state = make_state(model, 1, window=8)
    n = 20
    slots = np.zeros(n, dtype=np.int64)
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = np.linspace(0.0, 5.0, n)[:, None]
    out = new_output(n, 1)
    model.step(state, slots, x, ts, kp, out)
    assert state["count"][0] == n
    newest = (n - 1) % 8
    assert state["ring_in"][0, newest, 0] == np.float32(out.z[n - 1, 0])
