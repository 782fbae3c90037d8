"""NAB (Numenta Anomaly Benchmark) support: corpus loader, NAB-compatible scorer, result writer.

- :mod:`rnnstream.nab.dataset`  reads a NAB layout directory (data/, labels/, profiles.json).
- :mod:`rnnstream.nab.scorer`   scores detections exactly as NAB v1.1 does (sweep + threshold optimisation).
- :mod:`rnnstream.nab.report`   writes per-file result CSVs in NAB's layout and a markdown score table.
"""
