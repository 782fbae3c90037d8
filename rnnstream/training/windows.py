"""History windows for training, cut from the entities' rings and kept in a detector-wide buffer.

A ring (``kernels.ring``) holds an entity's last W inputs in compact form (only a sample of entities
keeps one: ``training.sample_entities``); a window is that ring
unrolled oldest first, each input bit for bit as the step kernel fed it to the network: (W, D) float32,
the layout every model's ``fit`` receives. The buffer keeps up to ``capacity`` windows across
retrainings (reservoir sampling with a seeded generator), so that a detector with few entities still
trains on more history than one ring holds.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..kernels.ring import calendar_inputs, clean_windows, unroll_windows
from ..state.slots import POOL_ROW


def with_ring(state: Mapping[str, np.ndarray], slots: np.ndarray) -> np.ndarray:
    """The entries of ``slots`` whose entities keep a history ring (``kernels.ring``), in order."""
    slots = np.asarray(slots, dtype=np.int64)
    return slots[state[POOL_ROW][slots] != 0]


def harvest_windows(state: Mapping[str, np.ndarray], slots: np.ndarray, kp: np.ndarray, n_features: int,
                    n_inputs: int, exclude_anomalies: bool) -> np.ndarray:
    """Unrolled windows (K, W, D) float32 of the given slots whose entities keep a ring and whose rings
    are full (and anomaly-free if asked), in the order of ``slots``. ``state`` is a ``SlotState``'s
    arrays (``models.base.common_fields``)."""
    count, ring_in = state["count"], state["ring_in"]
    w = ring_in.shape[1]
    if n_inputs - ring_in.shape[2] != calendar_inputs(kp) or ring_in.shape[2] < n_features:
        raise ValueError(f"rings of {ring_in.shape[2]} stored inputs do not make {n_inputs} inputs with "
                         f"{n_features} features and {calendar_inputs(kp)} calendar features")
    slots = with_ring(state, slots)
    slots = slots[count[slots] >= w]
    rows = state[POOL_ROW][slots].astype(np.int64) - 1
    if exclude_anomalies and rows.size:
        clean = clean_windows(state["ring_flag"], rows)
        slots, rows = slots[clean], rows[clean]
    out = np.zeros((slots.size, w, n_inputs), dtype=np.float32)
    if slots.size:
        unroll_windows(rows, count[slots], n_features, kp, ring_in, state["ring_t"], out)
    return out


class WindowBuffer:
    """Up to ``capacity`` windows; ``add`` keeps a uniform sample of all windows ever offered.

    Randomness comes from the generator the caller passes, seeded per retraining, so that the buffer's
    contents are a function of the event stream alone and need no generator state in a checkpoint.
    """

    def __init__(self, capacity: int, window: int, n_inputs: int):
        self.capacity = int(capacity)
        self.data = np.zeros((self.capacity, window, n_inputs), dtype=np.float32)
        self.size = 0
        self.offered = 0

    def add(self, windows: np.ndarray, rng: np.random.Generator) -> None:
        for win in windows:
            if self.size < self.capacity:
                self.data[self.size] = win
                self.size += 1
            else:
                j = int(rng.integers(0, self.offered + 1))
                if j < self.capacity:
                    self.data[j] = win
            self.offered += 1

    def sample(self, n: int, rng: np.random.Generator, newest: np.ndarray | None = None) -> np.ndarray:
        """``n`` windows: all of ``newest`` (up to n) topped up with a random draw from the buffer."""
        parts = [newest[:n]] if newest is not None and len(newest) else []
        rest = n - sum(len(p) for p in parts)
        if rest > 0 and self.size:
            pick = rng.choice(self.size, size=min(rest, self.size), replace=False)
            parts.append(self.data[np.sort(pick)])
        if not parts:
            return self.data[:0].copy()
        return np.concatenate(parts).copy()

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"data": self.data[: self.size].copy(), "offered": np.array(self.offered, dtype=np.int64)}

    def load_snapshot(self, arrays: dict[str, np.ndarray]) -> None:
        data = arrays["data"]
        self.size = min(len(data), self.capacity)
        self.data[: self.size] = data[: self.size]
        self.offered = int(arrays["offered"])
