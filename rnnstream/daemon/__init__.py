"""The long-running daemon: ``rnnstream run -c FILE`` (see ``runner``).

Unit of state: one ``(detector, topic, partition)``. Every assigned partition of a detector's topics
gets its own ``rnnstream.detector.Detector`` (weights, per-entity slot state, training schedule), so a
detector's "global" model is in fact kept per partition shard: entities are partitioned by the
producers' key, and each shard learns from the entities it sees. Records of one partition arrive in
offset order and a Detector's output is a function of its input stream alone (event-count training
triggers), so a unit's state after offset o is deterministic: a restart from a checkpoint reproduces
the uninterrupted run exactly, and a rebalance only moves checkpoint files.

Modules, one job each: ``decode`` (records -> columns + rejects), ``units`` (one partition's batch
step), ``outputs`` (anomaly/score/dead-letter records and their delivery), ``checkpoint`` (unit state files with generations), ``httpserver`` (/metrics, /healthz,
/readyz), ``logs`` (JSON-lines logging), ``notify`` (systemd sd_notify), ``runner`` (the loop).
"""
