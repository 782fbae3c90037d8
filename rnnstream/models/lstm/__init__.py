"""The LSTM model type (``model: {type: lstm, hidden: 16, layers: 1, seed: 0}``).

Per entity and layer, a hidden state ``h`` and a cell state ``c`` (H float32 each; (layers, H) with
more than one layer) live in SlotState; one weight set serves all entities of a detector. The head is
the GRU's (same initialisation as persistence, same kernel code, same BPTT code), reading the top
layer's ``h`` and the input ``u``. Training is the GRU's Adam loop (:func:`rnnstream.models.gru.train.fit`)
on the LSTM's BPTT objective (:mod:`.bptt`).

There is no bidirectional variant: it would need the entity's future events to score the present one.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from ...state.slots import FieldSpec
from ..base import BatchOutput, FitResult, Model
from ..gru.stacked import layer_view
from .kernel import flops_per_step, kernel_args, lstm_step_batch
from .params import GATES, RECURRENT, init_weights

__all__ = ["LSTMModel", "flops_per_step", "lstm_step_batch"]


class LSTMModel(Model):
    """LSTM (1 to 3 stacked layers) with the GRU's head. ``params`` needs ``.hidden``, ``.seed`` and
    optionally ``.layers`` (default 1).

    Threading and weight-swap behaviour as :class:`rnnstream.models.gru.GRUModel`.
    """

    type_name = "lstm"

    def __init__(self, n_features: int, n_inputs: int, params: Any, seed: int | None = None):
        self.hidden = int(params.hidden)
        self.layers = int(getattr(params, "layers", 1))
        if not 1 <= self.layers <= 3:
            raise ValueError(f"model.layers must be 1..3, got {self.layers}")
        super().__init__(n_features, n_inputs, params, seed)
        self._u = np.zeros(n_inputs, dtype=np.float32)
        self._err = np.zeros(n_features, dtype=np.float64)
        self._msd = np.zeros((2, n_features), dtype=np.float64)
        self._gates = np.zeros((2, GATES * self.hidden), dtype=np.float32)
        self._kw_source: dict[str, np.ndarray] | None = None
        self._kw: tuple[np.ndarray, ...] = ()

    def init_weights(self) -> dict[str, np.ndarray]:
        return init_weights(self.hidden, self.layers, self.n_inputs, self.n_features, self.seed)

    def state_fields(self) -> dict[str, FieldSpec]:
        shape = (self.hidden,) if self.layers == 1 else (self.layers, self.hidden)
        return {"h": FieldSpec(shape, "float32"), "c": FieldSpec(shape, "float32")}

    def flops_per_step(self) -> int:
        """FLOPs of the model's own part of one entity step (see :func:`kernel.flops_per_step`)."""
        return flops_per_step(self.hidden, self.n_inputs, self.n_features, self.layers)

    def _kernel_weights(self) -> tuple[np.ndarray, ...]:
        if self._kw_source is not self.weights:
            self._kw = kernel_args(self.weights, self.layers)
            self._kw_source = self.weights
        return self._kw

    def step(self, state: Mapping[str, np.ndarray], slots: np.ndarray, x: np.ndarray,
             ts: np.ndarray, kp: np.ndarray, out: BatchOutput) -> None:
        self.check_step(slots, x, ts, out)
        lstm_step_batch(slots, x, ts, kp, *self._kernel_weights(),
                        state["count"], state["last_ts"], state["nmean"], state["nvar"], state["pred"],
                        state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"],
                        layer_view(state["h"], self.layers, self.hidden),
                        layer_view(state["c"], self.layers, self.hidden),
                        self._u, self._err, self._msd, self._gates,
                        out.pred, out.z, out.err, out.score, out.flag, out.kind)

    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any) -> FitResult:
        from ..gru.bptt_stacked import stack_names
        from ..gru.train import fit
        from .bptt import loss_and_grad

        return fit(weights, opt_state, windows, training, functools.partial(loss_and_grad, layers=self.layers),
                   stack_names(self.layers, RECURRENT))
