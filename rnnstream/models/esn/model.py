"""``type: esn``: echo state network with a fixed sparse reservoir and a ridge-regression readout.

Guaranteed: the same parameters and seed give bit-identical weights and step outputs; the untrained
readout is the naive last-value forecaster (``pred == u[:F]``); ``fit`` is deterministic, leaves its
inputs untouched and returns fresh arrays; only ``w_out`` ever changes. Not guaranteed: bit-identical
results across numpy/BLAS builds for ``fit`` (``np.linalg.solve`` and matmul are BLAS-backed).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...state.slots import FieldSpec
from ..base import BatchOutput, FitResult, Model
from . import readout, reservoir
from .kernel import GROUP, esn_step_batch, reservoir_csr


class ESN(Model):
    """Echo state network; ``params`` has ``size, spectral_radius, leak_rate, input_scaling, sparsity,
    ridge, forgetting, seed`` (``config.model_params.ESNParams``)."""

    type_name = "esn"

    def __init__(self, n_features: int, n_inputs: int, params: Any, seed: int | None = None):
        self._csr_of: tuple[np.ndarray, np.ndarray] | None = None
        self._csr: tuple[np.ndarray, ...] = ()
        super().__init__(n_features, n_inputs, params, seed)
        size = int(params.size)
        f32 = np.float32
        # Scratch of the step kernel; only the scoring thread calls ``step``.
        self._u = np.zeros(n_inputs, dtype=f32)
        self._err = np.zeros(n_features)
        self._msd = np.zeros((2, n_features))
        self._z = np.zeros((size + n_inputs, GROUP), dtype=f32)
        self._pre = np.zeros((size, GROUP), dtype=f32)
        self._pacc = np.zeros((n_features, GROUP), dtype=f32)
        self._ob = np.zeros(n_features, dtype=f32)
        self._members = np.zeros(GROUP, dtype=np.int64)

    @property
    def size(self) -> int:
        return int(self.params.size)

    @property
    def n_phi(self) -> int:
        """Length of the readout's feature vector ``[r; u; 1]``."""
        return self.size + self.n_inputs + 1

    def init_weights(self) -> dict[str, np.ndarray]:
        return reservoir.init_weights(self.n_features, self.n_inputs, self.params, self.seed)

    def state_fields(self) -> dict[str, FieldSpec]:
        return {"r": FieldSpec((self.size,), "float32")}

    def _reservoir(self) -> tuple[np.ndarray, ...]:
        """The kernel's ``(ptr, col, val)`` (``kernel.reservoir_csr``), cached by array identity: fit
        never changes ``w_in`` or ``w_res`` (it returns new arrays for all weights), ``load_snapshot``
        replaces them; editing them in place is not supported."""
        w_in, w_res = self.weights["w_in"], self.weights["w_res"]
        if self._csr_of is None or self._csr_of[0] is not w_in or self._csr_of[1] is not w_res:
            self._csr = reservoir_csr(w_in, w_res)
            self._csr_of = (w_in, w_res)
        return self._csr

    def step(self, state: Mapping[str, np.ndarray], slots: np.ndarray, x: np.ndarray,
             ts: np.ndarray, kp: np.ndarray, out: BatchOutput) -> None:
        slots, x, ts = (np.asarray(slots, dtype=np.int64), np.asarray(x, dtype=np.float64),
                        np.asarray(ts, dtype=np.float64))
        self.check_step(slots, x, ts, out)
        w = self.weights
        ptr, col, val = self._reservoir()
        esn_step_batch(slots, x, ts, kp,
                       state["count"], state["last_ts"], state["nmean"], state["nvar"], state["pred"],
                       state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"], state["r"],
                       ptr, col, val, np.ascontiguousarray(w["bias"], dtype=np.float32),
                       np.ascontiguousarray(w["w_out"], dtype=np.float32), np.float32(self.params.leak_rate),
                       self._u, self._err, self._msd, self._z, self._pre, self._pacc, self._ob, self._members,
                       out.pred, out.z, out.err, out.score, out.flag, out.kind)

    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any = None) -> FitResult:
        """Update the readout from ``windows`` (B, T, D); see ``readout`` for the exact rule.

        ``opt_state`` holds ``A`` (n, n) and ``b`` (n, F) float64 and ``count`` (samples ever folded
        in); an empty mapping means no statistics yet. ``training`` is not used (no learning rate or
        step count: the readout is solved in closed form).
        """
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[2] != self.n_inputs or windows.shape[0] < 1 \
                or windows.shape[1] < 2:
            raise ValueError(f"ESN fit expects windows of shape (B >= 1, T >= 2, D={self.n_inputs}), "
                             f"got {windows.shape}")
        n = self.n_phi
        a_old = np.asarray(opt_state.get("A", np.zeros((n, n))), dtype=np.float64)
        b_old = np.asarray(opt_state.get("b", np.zeros((n, self.n_features))), dtype=np.float64)
        count = int(opt_state.get("count", 0))
        leak = float(self.params.leak_rate)
        phi, y = readout.samples(weights, windows, leak, self.n_features)
        a_new, b_new = readout.fold(a_old, b_old, phi, y, float(self.params.forgetting))
        w_out = readout.solve(a_new, b_new, float(self.params.ridge)).astype(np.float32)
        new_weights = {k: np.array(v, copy=True) for k, v in weights.items()}
        new_weights["w_out"] = w_out
        return FitResult(
            weights=new_weights,
            opt_state={"A": a_new, "b": b_new, "count": np.array(count + phi.shape[0], dtype=np.int64)},
            loss_before=readout.mse(weights["w_out"], phi, y),
            loss_after=readout.mse(w_out, phi, y),
            info={"samples": int(phi.shape[0]), "washout": readout.washout(windows.shape[1])},
        )
