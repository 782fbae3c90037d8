"""The model extension point: a small base class and the registry that the config's ``type:`` selects.

A model is one set of weights per detector. Its per-entity recurrent state lives in SlotState fields
that the model declares (``state_fields``) next to the common ones (``COMMON_FIELDS``), and one call of
``step`` advances a whole micro-batch through a numba kernel. Training is a pure function of a weight
snapshot and a batch of history windows, so it can run in a background thread while ``step`` keeps
scoring with the weights in force; the detector swaps the result in between two micro-batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from ..kernels.calibrate import sc_size
from ..kernels.ring import stored_inputs
from ..state.slots import FieldSpec


def common_fields(n_features: int, n_inputs: int, window: int, profile_bins: int = 0) -> dict[str, FieldSpec]:
    """Per-slot fields every model kernel uses (see ``rnnstream.kernels``).

    ``profile_bins`` > 0 makes room for the daily profile in the statistics row ``sc``.
    """
    return {
        "count": FieldSpec((), "int64"),                 # events seen
        "last_ts": FieldSpec((), "float64"),             # event time of the previous event, seconds
        "nmean": FieldSpec((n_features,), "float64"),    # normaliser mean
        "nvar": FieldSpec((n_features,), "float64"),     # normaliser variance
        "pred": FieldSpec((n_features,), "float32"),     # prediction of the next normalised features
        "sc": FieldSpec((sc_size(n_features, profile_bins),), "float64"),  # scorer statistics, daily profile
        # The last `window` model inputs, compactly (see kernels.ring): the inputs that are not calendar
        # features, the event times (one more, for the oldest gap) and one anomaly bit per event; kept
        # for a sample of entities only (pooled rows, see state.slots).
        "ring_in": FieldSpec((window, stored_inputs(n_features, profile_bins)), "float32", pooled=True),
        "ring_t": FieldSpec((window + 1,), "float64", pooled=True),
        "ring_flag": FieldSpec(((window + 7) // 8,), "uint8", pooled=True),
    }


@dataclass
class BatchOutput:
    """Per-event results of one ``step`` call (first ``n`` rows valid). Reused across calls."""

    pred: np.ndarray    # (N, F) float64 prediction made before the event, in the features' units
    z: np.ndarray       # (N, F) float64 normalised observation
    err: np.ndarray     # (N,) float64 RMS prediction error, normalised units
    score: np.ndarray   # (N,) float64 calibrated score in [0, 1]
    flag: np.ndarray    # (N,) uint8: bit 0 anomaly, bit 1 inside the suppression period
    kind: np.ndarray    # (N, F) uint8: per feature, the kernels.calibrate.KIND_* that blames it (0 = none)

    @classmethod
    def allocate(cls, capacity: int, n_features: int) -> "BatchOutput":
        return cls(np.zeros((capacity, n_features)), np.zeros((capacity, n_features)),
                   np.zeros(capacity), np.zeros(capacity), np.zeros(capacity, dtype=np.uint8),
                   np.zeros((capacity, n_features), dtype=np.uint8))


@dataclass
class FitResult:
    """What one training run produced; ``weights`` and ``opt_state`` are new arrays, never views."""

    weights: dict[str, np.ndarray]
    opt_state: dict[str, np.ndarray]
    loss_before: float
    loss_after: float
    info: dict[str, Any] = field(default_factory=dict)


class Model(ABC):
    """Base class of model types. Subclasses set ``type_name`` and are registered in
    ``rnnstream.config.model_params.MODEL_TYPES`` (with their parameter class).

    ``n_features`` is F (the features predicted), ``n_inputs`` is D = F + time features (the input).
    Guarantees a subclass must keep (the conformance suite checks them): the same seed gives the same
    weights and outputs; ``snapshot``/``load_snapshot`` round-trip exactly; finite input gives finite
    output.
    """

    type_name: ClassVar[str] = ""

    def __init__(self, n_features: int, n_inputs: int, params: Any, seed: int | None = None):
        self.n_features = n_features
        self.n_inputs = n_inputs
        self.params = params
        self.seed = int(getattr(params, "seed", 0) if seed is None else seed)
        self.weights: dict[str, np.ndarray] = self.init_weights()
        self.opt_state: dict[str, np.ndarray] = {}
        self.version = 0

    @abstractmethod
    def init_weights(self) -> dict[str, np.ndarray]:
        """Fresh weights from ``self.seed``."""

    @abstractmethod
    def state_fields(self) -> dict[str, FieldSpec]:
        """Per-slot recurrent state fields, e.g. ``{"h": FieldSpec((H,), "float32")}``."""

    def check_step(self, slots: np.ndarray, x: np.ndarray, ts: np.ndarray, out: BatchOutput) -> None:
        """Refuse arrays too short for ``slots``: numba does not bounds-check, a kernel would write
        past their end. Every ``step`` calls this before its kernel."""
        n = slots.shape[0]
        if (x.ndim != 2 or x.shape[0] < n or x.shape[1] != self.n_features or ts.shape[0] < n
                or out.err.shape[0] < n or out.pred.shape[0] < n):
            raise ValueError(f"step: {n} slots need x ({x.shape}) with {self.n_features} features, and ts "
                             f"({ts.shape}) and out (capacity {out.err.shape[0]}) with at least {n} rows")

    @abstractmethod
    def step(self, state: Mapping[str, np.ndarray], slots: np.ndarray, x: np.ndarray,
             ts: np.ndarray, kp: np.ndarray, out: BatchOutput) -> None:
        """Advance the events ``(slots[i], x[i], ts[i])`` in order, in one kernel call; fill ``out``."""

    @abstractmethod
    def fit(self, weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
            windows: np.ndarray, training: Any) -> FitResult:
        """Train on ``windows`` (B, T, D) float32 of past inputs; must not touch ``self.weights``."""

    def swap(self, result: FitResult) -> None:
        """Put trained weights in force (called between micro-batches by the scoring thread)."""
        self.weights = result.weights
        self.opt_state = result.opt_state
        self.version += 1

    def snapshot(self) -> dict[str, np.ndarray]:
        """Weights and optimiser state as named arrays (for checkpoints)."""
        out = {f"w.{k}": v for k, v in self.weights.items()}
        out.update({f"opt.{k}": v for k, v in self.opt_state.items()})
        out["version"] = np.array(self.version, dtype=np.int64)
        return out

    def load_snapshot(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.weights = {k[2:]: np.array(v) for k, v in arrays.items() if k.startswith("w.")}
        self.opt_state = {k[4:]: np.array(v) for k, v in arrays.items() if k.startswith("opt.")}
        self.version = int(arrays["version"])


def model_class(type_name: str) -> type[Model]:
    """The ``Model`` subclass registered for ``type_name`` in ``config.model_params.MODEL_TYPES``.

    Raises KeyError naming the known types; TypeError if the registered class does not say it is
    that type (a registry entry pointing at the wrong class).
    """
    import importlib

    from ..config.model_params import MODEL_TYPES

    try:
        module, name = MODEL_TYPES[type_name].implementation.split(":")
    except KeyError:
        raise KeyError(f"unknown model type {type_name!r}; known: {sorted(MODEL_TYPES)}") from None
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Model) and cls.type_name == type_name):
        raise TypeError(f"model type {type_name!r} is registered as {module}:{name}, which is not a Model "
                        f"with type_name {type_name!r}")
    return cls


def model_types() -> list[str]:
    """Every registered model type, sorted."""
    from ..config.model_params import MODEL_TYPES

    return sorted(MODEL_TYPES)


def create(type_name: str, n_features: int, n_inputs: int, params: Any) -> Model:
    return model_class(type_name)(n_features, n_inputs, params)
