"""Periodic retraining: a deterministic schedule, a buffer of history windows, a background fit."""

from .schedule import TrainingSchedule
from .windows import WindowBuffer, harvest_windows

__all__ = ["TrainingSchedule", "WindowBuffer", "harvest_windows"]
