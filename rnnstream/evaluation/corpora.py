"""One interface over the two labelled layouts: NAB (one series per file) and the generic layout.

A corpus lists stream keys (``<category>/<file>.csv``), loads a stream as a
:class:`~rnnstream.evaluation.layout.Stream`, and gives its windows. NAB files become streams of one
entity (``series``) with one feature (``value``) and windows of type ``nab``.

NAB-style normalised scores: for NAB exactly :func:`rnnstream.nab.scorer.score_corpus` on NAB's own
windows (the official benchmark's figures). For the generic layout the same scorer runs on every
(stream, entity) sub-series as if it were a NAB file, with each window extended by ``tolerance``
rows of its entity (the labels are the injected rows only, where NAB's windows are wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnstream.nab import dataset as nab_dataset, scorer
from rnnstream.nab.weights import as_epoch_seconds

from . import layout
from .operator import Outcome, entity_rows, spans, stream_outcome


@dataclass
class Corpus:
    root: Path
    kind: str                                   # "nab" or "generic"
    keys: list[str]
    windows: dict[str, list[layout.Window]]
    _loaded: dict[str, layout.Stream] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": {}}   # workers load their own streams; never ship the memo

    def only(self, category: str) -> Corpus:
        """The streams of one category; ``ValueError`` naming the categories there are if it has none."""
        keys = [k for k in self.keys if layout.category_of(k) == category]
        if not keys:
            raise ValueError(f"no stream of category {category!r}; the corpus has "
                             f"{sorted({layout.category_of(k) for k in self.keys})}")
        return Corpus(self.root, self.kind, keys, {k: self.windows.get(k, []) for k in keys})

    def load(self, key: str) -> layout.Stream:
        """The stream of ``key`` (read once per process, then kept: the figures read it several times)."""
        if key not in self._loaded:
            self._loaded[key] = self._read(key)
        return self._loaded[key]

    def _read(self, key: str) -> layout.Stream:
        if self.kind == "nab":
            ts, values = nab_dataset.load_series(self.root, key)
            return layout.Stream(key, ["series"], np.zeros(ts.size, dtype=np.int64), as_epoch_seconds(ts),
                                 values[:, None], ["value"])
        return layout.read_stream(self.root, key)

    def windows_by_code(self, stream: layout.Stream) -> dict[int, list[tuple[int, int, str, tuple[int, ...]]]]:
        """Entity code -> ``(start, end, type, column indices of the labelled features)`` of its windows."""
        code = {name: c for c, name in enumerate(stream.entity_names)}
        column = {name: i for i, name in enumerate(stream.features)}
        out: dict[int, list[tuple[int, int, str, tuple[int, ...]]]] = {}
        for w in self.windows.get(stream.key, []):
            cols = tuple(column[f] for f in w.features if f in column)
            out.setdefault(code[w.entity], []).append((w.start, w.end, w.type, cols))
        return out


def open_nab(root: str | Path, files: list[str] | None = None) -> Corpus:
    root = Path(root)
    keys = files or nab_dataset.list_files(root)
    raw = nab_dataset.load_windows(root)
    windows = {k: [layout.Window("series", int(as_epoch_seconds([a])[0]), int(as_epoch_seconds([b])[0]), "nab",
                                 ("value",)) for a, b in raw.get(k, [])] for k in keys}
    return Corpus(root, "nab", keys, windows)


def open_generic(root: str | Path, files: list[str] | None = None) -> Corpus:
    root = Path(root)
    keys = files or layout.list_streams(root)
    windows = layout.load_windows(root)
    return Corpus(root, "generic", keys, {k: windows.get(k, []) for k in keys})


def stream_result(corpus: Corpus, stream: layout.Stream, alarm: np.ndarray, tolerance: int,
                  score: np.ndarray | None = None, kind: np.ndarray | None = None) -> Outcome:
    """Operator counts of one stream; ``kind`` (rows x features, a detector's) also counts the windows
    found by an alarm that blames a labelled feature (generic layout: NAB's files have one feature)."""
    return stream_outcome(stream.entity, stream.timestamps, alarm, corpus.windows_by_code(stream),
                          stream.category, tolerance, score, kind if corpus.kind == "generic" else None)


def nab_events(corpus: Corpus, stream: layout.Stream, score: np.ndarray, tolerance: int) -> dict[str, scorer.FileEvents]:
    """NAB threshold events of one stream: the file itself for NAB, one per entity for the generic layout."""
    if corpus.kind == "nab":
        wins = [(w.start, w.end) for w in corpus.windows.get(stream.key, [])]
        return {stream.key: scorer.file_events(stream.timestamps, score, wins, stream.key)}
    out = {}
    by_code = corpus.windows_by_code(stream)
    for code, rows in entity_rows(stream.entity).items():
        ts = stream.timestamps[rows]
        wins = [(int(ts[s.first]), int(ts[s.last])) for s in spans(ts, code, by_code.get(code, ()), tolerance)]
        name = f"{stream.key}#{stream.entity_names[code]}"
        out[name] = scorer.file_events(ts, score[rows], wins, name)
    return out
