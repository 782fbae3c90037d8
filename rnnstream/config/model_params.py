"""Per-model-type parameter classes and the registry that maps ``model.type`` to them.

A new model type adds its frozen dataclass here and one entry to :data:`MODEL_PARAMS`; the
validator, the reference table and ``ModelConfig`` pick it up from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import setting


@dataclass(frozen=True, kw_only=True)
class GRUParams:
    """Gated recurrent unit trained by truncated BPTT."""

    hidden: int = setting(32, doc="Hidden units.", min=1, max=256)
    seed: int = setting(0, doc="Seed of the weight initialisation.", min=0)
    horizon: int = setting(1, doc="Events ahead the network predicts.", min=1, max=16)


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


ModelParams = GRUParams | ESNParams | NaiveParams

#: ``model.type`` -> parameter dataclass. Keys are the YAML spellings.
MODEL_PARAMS: dict[str, type] = {
    "gru": GRUParams,
    "esn": ESNParams,
    "naive": NaiveParams,
}
