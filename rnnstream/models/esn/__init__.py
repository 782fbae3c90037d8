"""Echo state network model type (``model: {type: esn}``); importing this package registers it."""

from .model import ESN

__all__ = ["ESN"]
