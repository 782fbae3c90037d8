"""The head's skip weights fitted in closed form before the Adam steps (``training.skip_fit``).

Per feature ``f``, the head's prediction is ``... + a_f u_f + c_f h_{j(f)} + b_f`` where ``a_f`` is the
skip weight on the last value (1 at initialisation: persistence) and ``c_f`` the weight on the level
unit ``j(f) = f`` (an exponentially weighted mean of the feature, ``params.level_units``; 0 at
initialisation). Adam moves each weight by about ``learning_rate`` a step, far too little, on short
entities, to shift a forecast from the last value to a smoothed level where that forecasts better. So
before the steps, the corrections ``(da_f, dc_f, db_f)`` that minimise the absolute error of the
current head on the training windows (the steps the loss counts, see :func:`.bptt.burn_in`) are found
by iteratively reweighted least squares, with a ridge penalty that pulls them towards 0, and added to
the head. On a random walk the optimum is the last value (``da = dc = 0``): the head stays persistence;
on a noisy level it moves towards the level unit.

Plain numpy in float64 (a forward pass of the cell over the windows, then a 3-parameter regression per
feature); deterministic. Not guaranteed: that the fitted mix forecasts better on the next events than on
the windows it was fitted on.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .bptt import burn_in

RIDGE = 1.0          # ridge penalty on the corrections, in units of one window step's weight
IRLS_STEPS = 6
IRLS_FLOOR = 1e-3    # residuals below this weigh as much as this one (the absolute error's kink)


def hidden_states(weights: Mapping[str, np.ndarray], windows: np.ndarray) -> np.ndarray:
    """The cell's hidden states (B, T, H) float64 over ``windows`` (B, T, D), from ``h = 0`` (as BPTT)."""
    w_x = np.asarray(weights["w_x"], dtype=np.float64)
    w_h = np.asarray(weights["w_h"], dtype=np.float64)
    b_x = np.asarray(weights["b_x"], dtype=np.float64)
    b_h = np.asarray(weights["b_h"], dtype=np.float64)
    u = np.asarray(windows, dtype=np.float64)
    n, steps, _ = u.shape
    hidden = w_h.shape[1]
    out = np.zeros((n, steps, hidden))
    h = np.zeros((n, hidden))
    for t in range(steps):
        gx = u[:, t] @ w_x.T + b_x
        gh = h @ w_h.T + b_h
        r = 1.0 / (1.0 + np.exp(-(gx[:, :hidden] + gh[:, :hidden])))
        z = 1.0 / (1.0 + np.exp(-(gx[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])))
        c = np.tanh(gx[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h = (1.0 - z) * c + z * h
        out[:, t] = h
    return out


def fit_skip(weights: Mapping[str, np.ndarray], windows: np.ndarray) -> dict[str, np.ndarray]:
    """``weights`` with the head's skip, level and bias weights of every feature refitted (new arrays
    for ``w_o`` and ``b_o``, the others as given). Windows shorter than 3 steps change nothing."""
    u = np.asarray(windows, dtype=np.float64)
    n, steps, _ = u.shape
    w_o = np.array(weights["w_o"], dtype=np.float64)
    b_o = np.array(weights["b_o"], dtype=np.float64)
    n_features = b_o.shape[0]
    hidden = np.shape(weights["w_h"])[1]
    skip = burn_in(steps)
    if n == 0 or steps - 1 - skip < 2:
        return dict(weights)
    h = hidden_states(weights, u)[:, skip:steps - 1]          # (B, S, H)
    x = u[:, skip:steps - 1]                                  # (B, S, D)
    pred = h @ w_o[:, :hidden].T + x @ w_o[:, hidden:].T + b_o
    target = u[:, skip + 1:steps, :n_features]
    for f in range(n_features):
        cols = [x[..., f].ravel()]
        idx = [(f, hidden + f)]
        if f < hidden:
            cols.append(h[..., f].ravel())
            idx.append((f, f))
        cols.append(np.ones(cols[0].shape))
        a = np.stack(cols, axis=1)
        resid = (target[..., f] - pred[..., f]).ravel()
        ridge = RIDGE * np.eye(a.shape[1])
        ridge[-1, -1] = 0.0
        delta = np.zeros(a.shape[1])
        for _ in range(IRLS_STEPS):
            wgt = 1.0 / np.maximum(np.abs(resid - a @ delta), IRLS_FLOOR)
            aw = a * wgt[:, None]
            scale = wgt.mean()
            delta = np.linalg.solve(aw.T @ a + ridge * scale, aw.T @ resid)
        for k, (row, col) in enumerate(idx):
            w_o[row, col] += delta[k]
        b_o[f] += delta[-1]
    out = dict(weights)
    out["w_o"] = w_o.astype(np.asarray(weights["w_o"]).dtype)
    out["b_o"] = b_o.astype(np.asarray(weights["b_o"]).dtype)
    return out
