"""The GRU model type (``model: {type: gru, hidden: 32, seed: 0}``).

Per entity, a gated recurrent unit's hidden state ``h`` (H float32) lives in SlotState; one weight set
serves all entities of a detector. A linear head on ``[h'; u]`` predicts the next normalised features;
it starts as persistence (``pred = u[:F]``). Training is truncated BPTT with Adam (:mod:`.train`).
With ``scale_head``, a second linear head predicts each feature's log-scale of the next error,
trained by the likelihood (:mod:`.bptt`), kept per entity in the state field ``log_scale`` (F float32)
and applied by the scorer (``kernels.observe.scale_by_model``); one layer only.
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
        self.scale_head = bool(getattr(params, "scale_head", False))
        if self.scale_head and self.layers > 1:
            raise ValueError("model.scale_head needs model.layers: 1")
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
        return init_weights(self.hidden, self.n_inputs, self.n_features, self.seed, self.scale_head)

    def state_fields(self) -> dict[str, FieldSpec]:
        fields = {"h": FieldSpec((self.hidden,) if self.layers == 1 else (self.layers, self.hidden), "float32")}
        if self.scale_head:
            fields["log_scale"] = FieldSpec((self.n_features,), "float32")
        return fields

    def flops_per_step(self) -> int:
        """FLOPs of the model's own part of one entity step (see :func:`kernel.flops_per_step`)."""
        if self.scale_head:
            return flops_per_step(self.hidden, self.n_inputs, self.n_features, scale_head=True)
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
        pred = state["pred"]
        gru_step_batch(slots, x, ts, kp, *self._kernel_weights(),
                       state["count"], state["last_ts"], state["nmean"], state["nvar"], pred,
                       state["log_scale"] if self.scale_head else pred[:0], state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"], state["h"],
                       self._u, self._err, self._msd, self._gates, self._hnew,
                       out.pred, out.z, out.err, out.score, out.flag, out.kind)

    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any) -> FitResult:
        from .train import fit  # keeps the BPTT kernels' compilation off the scoring path's import

        if self.layers > 1:
            from .bptt_stacked import loss_and_grad, stack_names

            return fit(weights, opt_state, windows, training, functools.partial(loss_and_grad, layers=self.layers),
                       stack_names(self.layers))
        if not self.scale_head:
            return fit(weights, opt_state, windows, training)
        # The scale head: its level c_s (training's alone) set to its optimum for the head's shape before
        # the steps, its applied log-scales centred on these windows after them (bptt.scale_level). A
        # diverged fit returns the input weights with that level only.
        from .bptt import GRAD_ORDER, SCALE_ORDER, scale_level

        loss = str(training.loss)
        weights = dict(weights, c_s=scale_level(weights, windows, loss)[1].astype(np.float32))
        result = fit(weights, opt_state, windows, training, names=GRAD_ORDER + SCALE_ORDER)
        if not result.info.get("diverged"):
            centre, level = scale_level(result.weights, windows, loss)
            result.weights["b_s"] = result.weights["b_s"] - centre.astype(np.float32)
            result.weights["c_s"] = (level + centre).astype(np.float32)
        return result
