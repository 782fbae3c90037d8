"""Typed, frozen, validated configuration: one YAML file -> one :class:`Config`.

Use :func:`load_config`; it raises :class:`rnnstream.errors.ConfigError` listing every problem.
"""

from .load import load_config, load_config_file, load_config_text, validate_main
from .model_params import MODEL_PARAMS, ESNParams, GRUParams
from .reference import render_reference, schema_paths
from .schema import (
    CheckpointConfig,
    ProcessingConfig,
    Config,
    DaemonConfig,
    DetectorConfig,
    EntityConfig,
    KafkaConfig,
    LoggingConfig,
    MetricsConfig,
    ModelConfig,
    OutputsConfig,
    ScoringConfig,
    TimeFeaturesConfig,
    TimestampConfig,
    TrainingConfig,
)
from .secret import Secret

__all__ = [
    "load_config", "load_config_file", "load_config_text", "validate_main", "render_reference", "schema_paths",
    "Config", "KafkaConfig", "CheckpointConfig", "ProcessingConfig", "DaemonConfig", "MetricsConfig", "LoggingConfig", "DetectorConfig",
    "EntityConfig", "TimestampConfig", "TimeFeaturesConfig", "ModelConfig", "TrainingConfig",
    "ScoringConfig", "OutputsConfig", "MODEL_PARAMS", "GRUParams", "ESNParams", "Secret",
]
