"""``rnnstream eval generate|corpus``: the generated corpus and the evaluation on any labelled corpus.

Registered under ``rnnstream eval`` by :func:`register`. Per-stream results go to stderr as each stream
finishes, under a progress bar when stderr is a terminal (``rnnstream.progress``); the final table goes
to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rnnstream.errors import RnnstreamError

from .operator import TOLERANCE_ROWS


def _seeds(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise RnnstreamError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def add_run_options(q: argparse.ArgumentParser) -> None:
    """Options shared by every evaluation command."""
    q.add_argument("-c", "--config", help="detector configuration (required unless --baseline zscore)")
    q.add_argument("--detector", help="detector name (default: the first)")
    q.add_argument("--set", action="append", metavar="PATH=YAML",
                   help="override a detector setting, e.g. --set model='{type: naive}' (repeatable)")
    q.add_argument("--seeds", help="model seeds, e.g. 0,1,2: one run each, mean and min-max reported")
    q.add_argument("--baseline", choices=["zscore"], help="score with the rolling z-score baseline instead")
    q.add_argument("--zscore-window", type=int, default=100)
    q.add_argument("--zscore-threshold", type=float, default=4.0)
    q.add_argument("--match-recall", action="store_true",
                   help="also sweep the z-score baseline's threshold to find as many anomalies as the detector")
    q.add_argument("--tolerance", type=int, default=TOLERANCE_ROWS,
                   help=f"rows a window is extended by for alarms and (generic layout) NAB scoring (default {TOLERANCE_ROWS})")
    q.add_argument("--workers", type=int, help="processes (default: 2 at most)")
    q.add_argument("--cache", help="directory of cached per-stream scores (default: <out>/cache)")
    q.add_argument("--no-cache", action="store_true", help="score every stream afresh and cache nothing")
    q.add_argument("--loco", metavar="GRID",
                   help="leave-one-category-out over the candidates of this YAML grid (e.g. config/loco.yaml)")
    q.add_argument("--json", help="write every figure of every run to this file")


def corpus_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--corpus", default="config/corpus.yaml", help="corpus definition (default config/corpus.yaml)")
    q.add_argument("--corpus-seed", type=int, default=0, help="seed of the generated corpus (default 0)")
    q.add_argument("--preset", help="a preset of the definition, e.g. small or dev")
    q.add_argument("--streams", type=int, help="number of streams (overrides the definition)")


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate, load_definition, corpus_dir, summary_line

    defn = load_definition(args.corpus, args.preset, args.streams)
    root = Path(args.root) if args.root else corpus_dir(defn, args.corpus_seed, args.out)
    print(summary_line(generate(defn, args.corpus_seed, root)))
    return 0


def _open(args: argparse.Namespace):
    from .corpora import open_generic, open_nab

    if args.benchmark == "nab":
        return open_nab(args.data)
    if args.data:
        corpus = open_generic(args.data)
    else:
        from .generate import ensure, load_definition

        defn = load_definition(args.corpus, args.preset, args.streams)
        started = time.perf_counter()
        root = ensure(defn, args.corpus_seed, args.corpus_dir)
        print(f"corpus {root} ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
        corpus = open_generic(root)
    if args.category is None:
        return corpus
    try:
        return corpus.only(args.category)
    except ValueError as exc:
        raise RnnstreamError(f"--category: {exc}") from None


def _specs(args: argparse.Namespace, candidate: dict | None = None) -> list[tuple[str, int | None, object]]:
    """(run name, seed, Spec) of every run the arguments ask for; ``candidate`` overrides win over --set."""
    from . import zscore
    from .run import Spec, config_text, parse_overrides

    zs = zscore.ZScoreParams(window=args.zscore_window, threshold=args.zscore_threshold)
    if args.baseline == "zscore":
        return [("zscore", None, Spec(zscore=zs))]
    if not args.config:
        raise RnnstreamError("-c/--config is required (or --baseline zscore)")
    overrides = {**parse_overrides(args.set), **(candidate or {})}
    return [("detector", s, Spec(config_text(args.config, args.detector, overrides, s), args.detector))
            for s in _seeds(args.seeds)]


def _run(args: argparse.Namespace, corpus, spec, cache: Path | None, title: str) -> tuple[dict, float]:
    """One run over the corpus, per-stream lines on stderr; (figures, seconds)."""
    from . import evaluate as ev
    from .run import run_corpus

    from rnnstream.progress import note, progress

    t0 = time.perf_counter()
    print(f"{title}: {len(corpus.keys)} streams", file=sys.stderr)
    with progress(total=len(corpus.keys), desc=title, unit="stream") as bar:
        def done(r) -> None:
            note(ev.stream_line(corpus, r, args.tolerance), stream=sys.stderr)
            bar.update(1)
        results = run_corpus(spec, corpus, args.workers, cache, done)
    fig = ev.figures(corpus, results, args.tolerance, calibration=spec.zscore is None)
    fig["results"] = results
    return fig, time.perf_counter() - t0


def cmd_loco(args: argparse.Namespace, corpus, cache: Path | None) -> int:
    """Every candidate of the grid on every stream (cached), then leave-one-category-out per seed."""
    from . import evaluate as ev, loco
    from .operator import Outcome, summarise

    if args.baseline:
        raise RnnstreamError("--loco tunes a detector configuration; it does not apply to --baseline")
    started = time.perf_counter()
    grid = loco.load_grid(args.loco)
    per_seed: dict[int | None, dict[str, dict]] = {}
    for cand, overrides in grid.items():
        for name, seed, spec in _specs(args, overrides):
            fig, _ = _run(args, corpus, spec, cache, f"{cand}{'' if seed is None else f' seed {seed}'}")
            fig.pop("results")
            per_seed.setdefault(seed, {})[cand] = fig
    figures_loco, raw = [], []
    for seed, figs in per_seed.items():
        held = loco.leave_one_out({c: f["events"] for c, f in figs.items()})
        in_sample = {c: f["nab"][loco.PROFILE]["score"] for c, f in figs.items()}
        print(f"\nleave-one-category-out{'' if seed is None else f', model seed {seed}'}:")
        print(loco.format_loco(held, in_sample), end="")
        row = {"LOCO NAB standard": loco.overall(held)}
        for h in held:
            outcome = sum((o for k, o in figs[h.chosen]["by_stream"].items() if loco.category_of(k) == h.category),
                          start=Outcome())
            op = summarise(outcome)
            row[f"[{h.category}] held-out NAB standard"] = h.score
            row[f"[{h.category}] found %"] = op["found_pct"]
            row[f"[{h.category}] false alarms /10k"] = op["fa_per_10k"]
        figures_loco.append(row)
        raw.append({"seed": seed, "held_out": [vars(h) for h in held], "in_sample": in_sample, "figures": row})
    if len(figures_loco) > 1:
        print()
        print(ev.format_report({"LOCO": ev.over_seeds(figures_loco)}, {"LOCO": len(figures_loco)}), end="")
    print(f"{time.perf_counter() - started:.1f}s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1, default=float) + "\n")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import evaluate as ev

    started = time.perf_counter()
    corpus = _open(args)
    out = Path(args.out)
    cache = None if args.no_cache else Path(args.cache) if args.cache else out / "cache"
    if args.loco:
        return cmd_loco(args, corpus, cache)
    specs = _specs(args)
    runs, raw = [], []
    for name, seed, spec in specs:
        fig, seconds = _run(args, corpus, spec, cache, f"{name}{'' if seed is None else f' seed {seed}'}")
        runs.append(ev.flat(fig))
        raw.append({"name": name, "seed": seed, "seconds": seconds, "figures": runs[-1],
                    "nab": {p: {k: v for k, v in r.items() if k != "files"} for p, r in fig["nab"].items()}})
        if corpus.kind == "nab" and args.baseline is None:
            _write_nab_results(corpus, fig["results"], out if len(specs) == 1 else out / f"seed{seed}")
    label = "zscore" if args.baseline == "zscore" else "detector"
    table = {label: ev.over_seeds(runs)}
    seeds = {label: len(runs)}
    if args.match_recall and args.baseline != "zscore":
        from .matched import zscore_at_recall

        target = table[label]["found %"][0]
        matched = zscore_at_recall(corpus, target, args.zscore_window, args.tolerance, args.workers, cache)
        table["zscore at matched recall"] = {k: (v, v, v) for k, v in matched.items()}
        seeds["zscore at matched recall"] = 1
        raw.append({"name": "zscore at matched recall", "figures": matched})
    print(ev.format_report(table, seeds), end="")
    print(f"{time.perf_counter() - started:.1f}s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1, default=float) + "\n")
    return 0


def _write_nab_results(corpus, results, out: Path) -> None:
    """``<out>/<category>/rnnstream_<file>.csv`` for every NAB file (readable by NAB's own scorer)."""
    from rnnstream.nab import dataset, report

    for key, res in results.items():
        ts, values = dataset.load_series(corpus.root, key)
        report.write_result(out, "rnnstream", key, ts, values, res.score)


def register(evsub: argparse._SubParsersAction) -> None:
    """Add ``nab``, ``generate``, ``corpus`` and ``scenarios`` under ``rnnstream eval``."""
    q = evsub.add_parser("nab", help="Numenta Anomaly Benchmark layout: data/<category>/<file>.csv + labels/")
    q.add_argument("--data", required=True, help="NAB root (data/, labels/combined_windows.json)")
    q.add_argument("--out", required=True,
                   help="per-file results in NAB's layout (<out>/<category>/rnnstream_<file>.csv; "
                        "<out>/seed<N>/... with several seeds) and the score cache")
    add_run_options(q)
    q.set_defaults(func=cmd_evaluate)

    q = evsub.add_parser("generate", help="write the generated corpus of a definition (generic layout)")
    corpus_options(q)
    q.add_argument("--out", default="out/corpus", help="parent directory (default out/corpus)")
    q.add_argument("--root", help="exact output directory (default <out>/<name>-<streams>-<seed>)")
    q.set_defaults(func=cmd_generate)

    q = evsub.add_parser("corpus", help="evaluate on a labelled corpus in the generic layout (generated if needed)")
    corpus_options(q)
    q.add_argument("--data", help="an existing generic-layout directory (instead of --corpus)")
    q.add_argument("--corpus-dir", default="out/corpus", help="where generated corpora live (default out/corpus)")
    q.add_argument("--out", default="out/eval", help="cache of per-stream scores (default out/eval)")
    q.add_argument("--category", help="evaluate only the streams of this category (a directory under data/)")
    add_run_options(q)
    q.set_defaults(func=cmd_evaluate)

    from .scenarios import register as register_scenarios

    register_scenarios(evsub)
