"""Model types. ``base.create(type, ...)`` builds the one named by a detector's ``model.type``."""

from .base import REGISTRY, BatchOutput, FitResult, Model, common_fields, create, register

__all__ = ["REGISTRY", "BatchOutput", "FitResult", "Model", "common_fields", "create", "register"]
