"""Config text and checkpoint builders shared by the ops tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnstream.config import load_config_text
from rnnstream.synth import generate


def config_text(*, bootstrap: str = "127.0.0.1:9092", topics: tuple[str, ...] = ("metrics.hosts",),
                anomalies: str | None = None, scores: str | None = None, state_dir: str | Path = "/tmp/x",
                model: str = "{type: gru, hidden: 6, seed: 3}", window: int = 8, name: str = "hosts",
                with_kafka: bool = True) -> str:
    outputs = "".join(f"\n      {k}: {v}" for k, v in (("anomalies_topic", anomalies), ("scores_topic", scores)) if v)
    kafka = f"kafka:\n  bootstrap_servers: [{bootstrap}]\n  group_id: ops-test\n" if with_kafka else ""
    return f"""{kafka}state_dir: {state_dir}
detectors:
  - name: {name}
    topics: [{", ".join(topics)}]
    entity: host
    timestamp: {{field: ts}}
    features: [cpu]
    model: {model}
    training: {{enabled: true, background: false, every_events: 400, every_seconds: 1.0e9,
                min_events: 200, window: {window}, batch_windows: 4, steps: 2, buffer_windows: 16}}
    scoring: {{warmup_events: 5, long_window: 50}}
    outputs: {{{outputs.strip().replace(chr(10) + '      ', ', ')}}}
"""


def write_config(path: Path, **kw) -> Path:
    path.write_text(config_text(**kw))
    load_config_text(path.read_text())  # fail early on a broken test config
    return path


def synthetic(n_entities: int = 4, n_steps: int = 500, seed: int = 7):
    """(entities, x (n,1), ts) of rnnstream.synth records, in time order."""
    records, _ = generate(n_entities=n_entities, n_steps=n_steps, seed=seed)
    ents = [r["host"] for r in records]
    x = np.array([[r["cpu"]] for r in records])
    ts = np.array([r["ts"] for r in records])
    return ents, x, ts
