"""The persistence baseline: predicts that the next normalised value equals the current one.

No weights, no recurrent state, no training. It exists so that the ablation table can show what the
recurrent models add over the calibrated error of the simplest forecaster.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..kernels.jit import kernel
from ..kernels.calibrate import FLAG_LATE
from ..kernels.observe import observe
from ..kernels.prefetch import prefetch_common
from ..kernels.ring import finish_event
from ..state.slots import FieldSpec
from .base import BatchOutput, FitResult, Model


@kernel
def naive_step_batch(slots, x, ts, kp, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag,
                     u, err, msd, out_pred, out_z, out_err, out_score, out_flag, out_kind):
    n_features = x.shape[1]
    for i in range(slots.shape[0]):
        s = slots[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag)
        flags = observe(i, x[i], ts[i], s, count, last_ts, nmean, nvar, pred, pred[:0], sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        for f in range(n_features):
            pred[s, f] = u[f]
        finish_event(s, ts[i], u, x.shape[1], flags & 1, count, last_ts, pool_row, ring_in, ring_t, ring_flag)


class NaiveModel(Model):
    type_name = "naive"

    def init_weights(self) -> dict[str, np.ndarray]:
        return {}

    def state_fields(self) -> dict[str, FieldSpec]:
        return {}

    def step(self, state: Mapping[str, np.ndarray], slots: np.ndarray, x: np.ndarray, ts: np.ndarray,
             kp: np.ndarray, out: BatchOutput) -> None:
        self.check_step(slots, x, ts, out)
        if not hasattr(self, "_u"):
            self._u = np.zeros(self.n_inputs, dtype=np.float32)
            self._err = np.zeros(self.n_features)
            self._msd = np.zeros((2, self.n_features))
        naive_step_batch(slots, x, ts, kp, state["count"], state["last_ts"], state["nmean"], state["nvar"],
                         state["pred"], state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"],
                         self._u, self._err, self._msd, out.pred, out.z, out.err, out.score, out.flag, out.kind)

    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any) -> FitResult:
        return FitResult({}, {}, 0.0, 0.0)
