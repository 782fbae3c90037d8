"""The one registry of model types: ``model.type`` -> its parameter class and its implementation.

A new model type adds its frozen parameter dataclass here and one entry to :data:`MODEL_TYPES`; the
validator, the reference table, ``ModelConfig`` (through :data:`MODEL_PARAMS`, a view of it) and
``rnnstream.models.base.create`` all read this registry. The implementation is named by its import
path, so loading a config never imports the numba kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import setting


@dataclass(frozen=True, kw_only=True)
class GRUParams:
    """Gated recurrent unit trained by truncated BPTT."""

    hidden: int = setting(16, doc="Hidden units.", min=1, max=256)
    layers: int = setting(1, doc="Stacked recurrent layers, each with its own hidden state per entity.", min=1, max=3)
    seed: int = setting(0, doc="Seed of the weight initialisation.", min=0)
    scale_head: bool = setting(
        False, doc="A second head predicts each feature's log-scale of the next error (trained by the Laplace "
        "likelihood, Gaussian with training.loss: squared); the scorer sets each error against it. One layer "
        "only; 4 B per entity and feature.")

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.scale_head and self.layers > 1:
            return [("scale_head", f"needs layers: 1 (got layers: {self.layers})")]
        return []


@dataclass(frozen=True, kw_only=True)
class LSTMParams:
    """Long short-term memory (input, forget and output gates, a cell state) trained by truncated BPTT."""

    hidden: int = setting(16, doc="Hidden units.", min=1, max=256)
    layers: int = setting(1, doc="Stacked recurrent layers, each with its own hidden and cell state per entity.",
                          min=1, max=3)
    seed: int = setting(0, doc="Seed of the weight initialisation.", min=0)


@dataclass(frozen=True, kw_only=True)
class ESNParams:
    """Echo state network: fixed random reservoir, ridge-regression readout updated online."""

    size: int = setting(200, doc="Reservoir units.", min=8, max=4096)
    spectral_radius: float = setting(0.9, doc="Largest absolute eigenvalue of the reservoir matrix.", gt=0)
    leak_rate: float = setting(0.3, doc="Leaky-integration rate of the reservoir state.", gt=0, max=1)
    input_scaling: float = setting(1.0, doc="Scale of the input weights.", gt=0)
    sparsity: float = setting(0.9, doc="Fraction of reservoir weights that are zero.", min=0, lt=1)
    ridge: float = setting(1e-3, doc="Ridge (L2) penalty of the readout.", gt=0)
    forgetting: float = setting(0.999, doc="Forgetting factor of the recursive least-squares readout.", gt=0, max=1)
    seed: int = setting(0, doc="Seed of the reservoir.", min=0)


@dataclass(frozen=True, kw_only=True)
class NaiveParams:
    """Persistence baseline (predicts the current value): no weights, for comparison only."""

    seed: int = setting(0, doc="Unused; kept so every model type has a seed.", min=0)


ModelParams = GRUParams | LSTMParams | ESNParams | NaiveParams

@dataclass(frozen=True)
class ModelType:
    """One model type: its parameter dataclass and its ``Model`` subclass as ``"module:Class"``."""

    params: type
    implementation: str


#: ``model.type`` -> its registration. Keys are the YAML spellings.
MODEL_TYPES: dict[str, ModelType] = {
    "gru": ModelType(GRUParams, "rnnstream.models.gru:GRUModel"),
    "lstm": ModelType(LSTMParams, "rnnstream.models.lstm:LSTMModel"),
    "esn": ModelType(ESNParams, "rnnstream.models.esn:ESN"),
    "naive": ModelType(NaiveParams, "rnnstream.models.naive:NaiveModel"),
}

#: ``model.type`` -> parameter dataclass (derived from :data:`MODEL_TYPES`).
MODEL_PARAMS: dict[str, type] = {name: t.params for name, t in MODEL_TYPES.items()}
