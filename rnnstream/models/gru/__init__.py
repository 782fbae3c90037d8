"""The GRU model type (``model: {type: gru, hidden: 32, seed: 0}``).

Per entity, a gated recurrent unit's hidden state ``h`` (H float32) lives in SlotState; one weight set
serves all entities of a detector. A linear head on ``[h'; u]`` predicts the next normalised features;
it starts as persistence (``pred = u[:F]``). Training is truncated BPTT with Adam (:mod:`.train`).
With ``layers`` > 1 the layers are stacked (:mod:`.stacked`, :mod:`.bptt_stacked`) and ``h`` is
(layers, H); one layer runs the single-layer kernel.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from ...state.slots import FieldSpec
from ..base import BatchOutput, FitResult, Model
from . import stacked
from .kernel import flops_per_step, gru_step_batch, transposed
from .params import init_weights

__all__ = ["GRUModel", "flops_per_step", "gru_step_batch"]


class GRUModel(Model):
    """GRU with a linear head predicting the next event. ``params`` needs ``.hidden`` and ``.seed``.

    Not thread-safe for ``step`` (one scoring thread); ``fit`` is a pure function and may run in
    another thread at the same time. ``step`` notices new weights when ``self.weights`` is replaced
    (``swap``, ``load_snapshot``), not when its arrays are changed in place.
    """

    type_name = "gru"

    def __init__(self, n_features: int, n_inputs: int, params: Any, seed: int | None = None):
        self.hidden = int(params.hidden)
        self.layers = int(getattr(params, "layers", 1))
        super().__init__(n_features, n_inputs, params, seed)
        h3 = 3 * self.hidden
        self._u = np.zeros(n_inputs, dtype=np.float32)
        self._err = np.zeros(n_features, dtype=np.float64)
        self._msd = np.zeros((2, n_features), dtype=np.float64)
        self._gates = np.zeros((2, h3), dtype=np.float32)
        self._hnew = np.zeros(self.hidden, dtype=np.float32)
        self._kw_source: dict[str, np.ndarray] | None = None
        self._kw: tuple[np.ndarray, ...] = ()

    def init_weights(self) -> dict[str, np.ndarray]:
        if self.layers > 1:
            return stacked.init_stacked_weights(self.hidden, self.layers, self.n_inputs, self.n_features, self.seed)
        return init_weights(self.hidden, self.n_inputs, self.n_features, self.seed)

    def state_fields(self) -> dict[str, FieldSpec]:
        return {"h": FieldSpec((self.hidden,) if self.layers == 1 else (self.layers, self.hidden), "float32")}

    def flops_per_step(self) -> int:
        """FLOPs of the model's own part of one entity step (see :func:`kernel.flops_per_step`)."""
        return stacked.flops_per_step(self.hidden, self.n_inputs, self.n_features, self.layers)

    def _kernel_weights(self) -> tuple[np.ndarray, ...]:
        if self._kw_source is not self.weights:
            self._kw = transposed(self.weights) if self.layers == 1 else stacked.stacked_args(self.weights, self.layers)
            self._kw_source = self.weights
        return self._kw

    def step(self, state: Mapping[str, np.ndarray], slots: np.ndarray, x: np.ndarray,
             ts: np.ndarray, kp: np.ndarray, out: BatchOutput) -> None:
        self.check_step(slots, x, ts, out)
        if self.layers > 1:
            stacked.gru_stack_step_batch(
                slots, x, ts, kp, *self._kernel_weights(), state["count"], state["last_ts"], state["nmean"],
                state["nvar"], state["pred"], state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"],
                stacked.layer_view(state["h"], self.layers, self.hidden), self._u, self._err, self._msd, self._gates,
                self._hnew, out.pred, out.z, out.err, out.score, out.flag, out.kind)
            return
        w_xt, w_ht, b_x, b_h, w_o, b_o = self._kernel_weights()
        gru_step_batch(slots, x, ts, kp, w_xt, w_ht, b_x, b_h, w_o, b_o,
                       state["count"], state["last_ts"], state["nmean"], state["nvar"], state["pred"],
                       state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"], state["h"],
                       self._u, self._err, self._msd, self._gates, self._hnew,
                       out.pred, out.z, out.err, out.score, out.flag, out.kind)

    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any) -> FitResult:
        from .train import fit  # keeps the BPTT kernels' compilation off the scoring path's import

        if self.layers > 1:
            from .bptt_stacked import loss_and_grad, stack_names

            return fit(weights, opt_state, windows, training, functools.partial(loss_and_grad, layers=self.layers),
                       stack_names(self.layers))
        return fit(weights, opt_state, windows, training)
