"""Echo state network model type (``model: {type: esn}``; registered in ``config.model_params.MODEL_TYPES``)."""

from .model import ESN

__all__ = ["ESN"]
