"""``fit``: Adam steps on the BPTT loss, as a pure function of a weight snapshot and a batch of windows.

Each of ``training.steps`` steps uses a minibatch of ``training.batch_windows`` windows (all windows
when there are no more than that): the windows are visited in a random order, reshuffled each pass,
from a generator seeded with the optimiser's step count, so the same inputs give the same result.
Gradients are clipped to ``training.clip_norm`` in global L2 norm; the objective is ``training.loss``
(absolute or squared error, see :mod:`.bptt`). Training runs in float64; the
returned weights are float32. ``loss_before``/``loss_after`` are the loss on *all* windows.

If a gradient turns non-finite, training stops and the input weights come back unchanged, with
``info["diverged"] = True``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..base import FitResult
from .adam import adam_update, adopt_state, clip_by_global_norm, state_fits
from .bptt import GRAD_ORDER, loss_and_grad, loss_and_grad_into


class _Vectors:
    """Arrays of the given shapes as views of one float64 vector, so that Adam's update (element by
    element: the same bits per element as array by array) runs as a few whole-vector operations."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
        self.size = sum(math.prod(shape) for shape in self.shapes.values())

    def views(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        out, at = {}, 0
        for k, shape in self.shapes.items():
            n = math.prod(shape)
            out[k] = vector[at:at + n].reshape(shape)
            at += n
        return out

    def new(self, arrays: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A vector (zeros, or a float64 copy of ``arrays``) and its views."""
        vector = np.zeros(self.size)
        views = self.views(vector)
        if arrays is not None:
            for k, view in views.items():
                view[...] = arrays[k]
        return vector, views


def fit(weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray], windows: np.ndarray,
        training: Any, objective: Callable[..., tuple[float, dict[str, np.ndarray]]] = loss_and_grad,
        names: Sequence[str] = GRAD_ORDER) -> FitResult:
    """Train a copy of ``weights`` on ``windows`` (B, T, D); inputs are not modified.

    ``objective(weights, windows, want_grad=..., loss=training.loss) -> (loss, gradients)`` and the ``names`` of the weights
    it trains default to the single-layer GRU's; the LSTM and the stacks pass theirs. The GRU's own
    objective adds its gradients into buffers allocated once per fit (``loss_and_grad_into``).
    """
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if windows.ndim != 3:
        raise ValueError(f"training windows must be a (B, T, D) array, got shape {windows.shape}")
    vectors = _Vectors({k: np.shape(weights[k]) for k in names})
    p, params = vectors.new(weights)
    adopted = state_fits(opt_state, params)   # else Adam starts afresh (adam.adopt_state)
    m, m_views = vectors.new({k: opt_state[f"m.{k}"] for k in names} if adopted else None)
    v, v_views = vectors.new({k: opt_state[f"v.{k}"] for k in names} if adopted else None)
    t = int(opt_state["t"]) if adopted else 0
    seed = t
    g, grads = vectors.new()
    into = objective is loss_and_grad
    n_windows = windows.shape[0]
    batch = max(1, min(int(getattr(training, "batch_windows", n_windows)), n_windows))
    rng = None   # drawn from only when the minibatches are not all windows
    order = np.arange(n_windows)
    pos = n_windows

    loss = str(training.loss)
    # With one minibatch of all windows, the first step's loss is the loss before training (the same
    # forward pass, bit for bit), so it is not computed twice.
    loss_before = None if batch == n_windows else objective(params, windows, want_grad=False, loss=loss)[0]
    norms = []
    for _ in range(int(training.steps)):
        if batch == n_windows:
            chunk = windows
        else:
            if rng is None:
                rng = np.random.default_rng(seed)
            if pos + batch > n_windows:
                order = rng.permutation(n_windows)
                pos = 0
            chunk = windows[np.sort(order[pos:pos + batch])]
            pos += batch
        if into:
            g[:] = 0.0
            value = loss_and_grad_into(params, chunk, grads, loss=loss)
            step_grads = grads
        else:
            value, step_grads = objective(params, chunk, loss=loss)
            if set(step_grads) != set(names):
                raise ValueError(f"the objective returned gradients of {sorted(step_grads)}, expected {sorted(names)}")
            for k, grad in step_grads.items():
                grads[k][...] = grad
            step_grads = {k: grads[k] for k in step_grads}   # the objective's order: the norm's sum follows it
        if loss_before is None:
            loss_before = value
        norm = clip_by_global_norm(step_grads, float(training.clip_norm))
        if not np.isfinite(norm):
            return FitResult({k: np.array(weights[k], dtype=np.float32) for k in names},
                             adopt_state(opt_state, params), loss_before, loss_before,
                             {"diverged": True, "steps": len(norms)})
        norms.append(norm)
        t += 1
        adam_update(p, g, m, v, t, float(training.learning_rate))
    if loss_before is None:  # no steps at all
        loss_before = objective(params, windows, want_grad=False, loss=loss)[0]
    new_weights = {k: params[k].astype(np.float32) for k in names}
    loss_after, _ = objective(new_weights, windows, want_grad=False, loss=loss)
    state = {f"m.{k}": view for k, view in m_views.items()}
    state.update({f"v.{k}": view for k, view in v_views.items()})
    state["t"] = np.array(t, dtype=np.int64)
    return FitResult(new_weights, state, loss_before, loss_after,
                     {"steps": len(norms), "grad_norm_first": norms[0] if norms else 0.0,
                      "grad_norm_last": norms[-1] if norms else 0.0})
