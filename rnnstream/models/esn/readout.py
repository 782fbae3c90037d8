"""Training the ESN readout: ridge regression from running sufficient statistics with forgetting.

Only ``w_out`` is trained. For every window (B, T, D) the reservoir is run from ``r = 0``; the first
``washout(T) = min(T // 4, 16)`` states are discarded (they still remember the zero start), and each
later step ``t < T - 1`` gives one sample: features ``phi = [r_t; u_t; 1]`` (``r_t`` is the state after
reading ``u_t``, what the step kernel's readout sees; here in float64 with the exact tanh, where the
kernel runs in float32 with a rational tanh, which differ by about 1e-6) and target ``y = u_{t+1}[:F]``.

Forgetting rule (exact): with ``m`` new samples in one fit,

    A <- forgetting**m * A + sum_new phi phi^T        b <- forgetting**m * b + sum_new phi y^T

i.e. the old statistics age by one factor per new sample, while the samples of one fit are weighted
equally among themselves (windows of one batch have no order between them). The readout then solves

    (A + lam I) w^T = b,    lam = ridge * trace(A) / n,    n = R + D + 1

so ``ridge`` is relative to the mean feature energy and does not depend on how many samples the
statistics hold. All of this runs in float64; the new ``w_out`` is stored as float32.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def washout(n_steps: int) -> int:
    """Leading steps of a window whose states are not used as samples."""
    return min(n_steps // 4, 16)


def run_reservoir(weights: Mapping[str, np.ndarray], windows: np.ndarray, leak: float) -> np.ndarray:
    """States (B, T, R) float64 after reading each input of each window, starting from zero."""
    w_in = np.asarray(weights["w_in"], dtype=np.float64)
    w_res_t = np.asarray(weights["w_res"], dtype=np.float64).T
    bias = np.asarray(weights["bias"], dtype=np.float64)
    u = np.asarray(windows, dtype=np.float64)
    b, n_steps, _ = u.shape
    drive = u @ w_in.T + bias                      # (B, T, R): the input part of every step at once
    states = np.empty((b, n_steps, w_in.shape[0]))
    r = np.zeros((b, w_in.shape[0]))
    for t in range(n_steps):
        r = (1.0 - leak) * r + leak * np.tanh(drive[:, t] + r @ w_res_t)
        states[:, t] = r
    return states


def samples(weights: Mapping[str, np.ndarray], windows: np.ndarray, leak: float,
            n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``phi`` (M, R + D + 1) and targets ``y`` (M, F), float64, M = B * (T - 1 - washout)."""
    b, n_steps, n_inputs = windows.shape
    w0 = washout(n_steps)
    states = run_reservoir(weights, windows, leak)[:, w0:n_steps - 1]
    u = np.asarray(windows, dtype=np.float64)
    m = b * (n_steps - 1 - w0)
    phi = np.concatenate([states, u[:, w0:n_steps - 1], np.ones((b, n_steps - 1 - w0, 1))], axis=2)
    y = u[:, w0 + 1:, :n_features]
    return phi.reshape(m, -1), y.reshape(m, n_features)


def fold(a: np.ndarray, bvec: np.ndarray, phi: np.ndarray, y: np.ndarray,
         forgetting: float) -> tuple[np.ndarray, np.ndarray]:
    """New ``(A, b)`` after ageing the old ones by ``forgetting**len(phi)`` and adding the samples."""
    decay = float(forgetting) ** phi.shape[0]
    return decay * a + phi.T @ phi, decay * bvec + phi.T @ y


def solve(a: np.ndarray, bvec: np.ndarray, ridge: float) -> np.ndarray:
    """Readout (F, n) float64 solving ``(A + ridge * trace(A)/n * I) w^T = b``."""
    n = a.shape[0]
    lam = float(ridge) * max(float(np.trace(a)) / n, np.finfo(np.float64).tiny)
    return np.linalg.solve(a + lam * np.eye(n), bvec).T


def mse(w_out: np.ndarray, phi: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of the readout ``w_out`` over all samples and features."""
    resid = phi @ np.asarray(w_out, dtype=np.float64).T - y
    return float(np.mean(resid * resid))
