"""Detection quality on labelled corpora: the generated corpus, the generic layout, operator figures, LOCO.

- :mod:`~rnnstream.evaluation.layout`    the generic labelled-corpus layout (read/write).
- :mod:`~rnnstream.evaluation.generate`  the generated development corpus (GutenTAG + metric shapes).
- :mod:`~rnnstream.evaluation.corpora`   one interface over NAB and the generic layout.
- :mod:`~rnnstream.evaluation.run`       a fresh detector (or the z-score baseline) per stream, cached.
- :mod:`~rnnstream.evaluation.operator`  anomalies found, delay, false alarms at the detector's own threshold.
- :mod:`~rnnstream.evaluation.evaluate`  NAB-style scores + operator figures, seed spreads, tables.
- :mod:`~rnnstream.evaluation.zscore`    the rolling z-score baseline; :mod:`~.matched` it at equal recall.
- :mod:`~rnnstream.evaluation.commands`  ``rnnstream eval nab|generate|corpus``.
"""
