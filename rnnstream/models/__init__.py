"""Model types. ``base.create(type, ...)`` builds the one named by a detector's ``model.type``."""

from .base import BatchOutput, FitResult, Model, common_fields, create, model_class, model_types

__all__ = ["BatchOutput", "FitResult", "Model", "common_fields", "create", "model_class", "model_types"]
