"""History windows for training, cut from the entities' rings and kept in a detector-wide buffer.

A ring holds an entity's last W inputs; a window is that ring unrolled oldest first. The buffer keeps up
to ``capacity`` windows across retrainings (reservoir sampling with a seeded generator), so that a
detector with few entities still trains on more history than one ring holds.
"""

from __future__ import annotations

import numpy as np


def harvest_windows(count: np.ndarray, ring_in: np.ndarray, ring_flag: np.ndarray,
                    slots: np.ndarray, exclude_anomalies: bool) -> np.ndarray:
    """Unrolled windows (K, W, D) of the given slots whose rings are full (and anomaly-free if asked)."""
    w = ring_in.shape[1]
    slots = slots[count[slots] >= w]
    if slots.size == 0:
        return np.zeros((0, w, ring_in.shape[2]), dtype=ring_in.dtype)
    idx = (count[slots, None] - w + np.arange(w)) % w
    if exclude_anomalies:
        clean = ~ring_flag[slots[:, None], idx].any(axis=1)
        slots, idx = slots[clean], idx[clean]
    return ring_in[slots[:, None], idx]


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
