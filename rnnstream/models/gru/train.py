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

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..base import FitResult
from .adam import adam_step, adopt_state, clip_by_global_norm
from .bptt import GRAD_ORDER, loss_and_grad


def fit(weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray], windows: np.ndarray,
        training: Any, objective: Callable[..., tuple[float, dict[str, np.ndarray]]] = loss_and_grad,
        names: Sequence[str] = GRAD_ORDER) -> FitResult:
    """Train a copy of ``weights`` on ``windows`` (B, T, D); inputs are not modified.

    ``objective(weights, windows, want_grad=..., loss=training.loss) -> (loss, gradients)`` and the ``names`` of the weights
    it trains default to the single-layer GRU's; the LSTM and the stacks pass theirs.
    """
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if windows.ndim != 3:
        raise ValueError(f"training windows must be a (B, T, D) array, got shape {windows.shape}")
    params = {k: np.array(weights[k], dtype=np.float64) for k in names}
    state = adopt_state(opt_state, params)
    n_windows = windows.shape[0]
    batch = max(1, min(int(getattr(training, "batch_windows", n_windows)), n_windows))
    rng = np.random.default_rng(int(state["t"]))
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
            if pos + batch > n_windows:
                order = rng.permutation(n_windows)
                pos = 0
            chunk = windows[np.sort(order[pos:pos + batch])]
            pos += batch
        value, grads = objective(params, chunk, loss=loss)
        if loss_before is None:
            loss_before = value
        norm = clip_by_global_norm(grads, float(training.clip_norm))
        if not np.isfinite(norm):
            return FitResult({k: np.array(weights[k], dtype=np.float32) for k in names},
                             adopt_state(opt_state, params), loss_before, loss_before,
                             {"diverged": True, "steps": len(norms)})
        norms.append(norm)
        adam_step(params, grads, state, float(training.learning_rate))
    if loss_before is None:  # no steps at all
        loss_before = objective(params, windows, want_grad=False, loss=loss)[0]
    new_weights = {k: params[k].astype(np.float32) for k in names}
    loss_after, _ = objective(new_weights, windows, want_grad=False, loss=loss)
    return FitResult(new_weights, state, loss_before, loss_after,
                     {"steps": len(norms), "grad_norm_first": norms[0] if norms else 0.0,
                      "grad_norm_last": norms[-1] if norms else 0.0})
