"""rnnstream: real-time anomaly detection on streams with per-entity recurrent networks."""

__version__ = "0.1.0"
