"""``rnnstream state reset``: move unit checkpoint directories aside, deleting nothing.

The selected ``<state_dir>/<detector>/<topic>-<partition>/`` directories go to
``<state_dir>/reset-<UTC timestamp>/<detector>/``; moving one back undoes the reset. Refuses without
``yes`` (and prints what would be reset); refuses while a daemon holds ``state_dir``'s lock
(``rnnstream.ops.preflight.StateLock``: every running daemon holds it shared), and when a unit's
newest checkpoint is younger than ``min_age`` seconds, unless ``force``. The consumer group's committed
offsets are not touched: the daemon resumes at them with fresh state; the printed
``kafka-consumer-groups.sh`` command rewinds them when reprocessing is wanted.

Not guaranteed: safety with ``force`` while a daemon runs (its next checkpoint would recreate the unit),
nor the lock on a file system without ``flock``; stop the daemons first.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..config import Config, load_config_file
from ..daemon.checkpoint import CheckpointStore
from ..errors import StateFormatError
from ..state.fileformat import read_state_file
from .preflight import StateLock
from .state_cmd import Unit, find_units, nothing_found


def _newest_age(store: CheckpointStore, unit: Unit, now: float) -> float | None:
    gens = store.generations(unit.detector, (unit.topic, unit.partition))
    if not gens:
        return None
    path = gens[0][1]
    try:
        created = float(read_state_file(path)[1]["created_at"])
    except (StateFormatError, KeyError, TypeError, ValueError):
        created = path.stat().st_mtime   # unreadable newest: its write time is the best we know
    return now - created


def reset_state(cfg: Config, detector: str | None = None, partition: str | None = None, *, yes: bool = False,
                min_age: float = 0.0, force: bool = False, out: TextIO | None = None,
                now: float | None = None) -> int:
    """Move the selected unit directories aside (see the module docstring). Returns the exit code:
    0 done, 1 refused (no ``--yes``, a too recent checkpoint, or nothing selected)."""
    out = out or sys.stdout
    now = time.time() if now is None else now
    store = CheckpointStore(cfg.state_dir, cfg.checkpoint.keep_generations)
    units = find_units(cfg.state_dir, detector, partition)
    if not units:
        print(nothing_found(cfg.state_dir, detector, partition) + "; nothing to reset", file=out)
        return 1
    lock = StateLock(cfg.state_dir)
    running = not lock.acquire(exclusive=True)
    try:
        return _reset(cfg, units, lock_path=lock.path if running else None, yes=yes, min_age=min_age,
                      force=force, out=out, now=now, store=store)
    finally:
        lock.release()


def _reset(cfg: Config, units: list[Unit], *, lock_path: Path | None, yes: bool, min_age: float, force: bool,
           out: TextIO, now: float, store: CheckpointStore) -> int:
    blockers = []
    if lock_path is not None:
        blockers.append(f"a running daemon holds {lock_path}")
    for unit in units:
        age = _newest_age(store, unit, now)
        if age is not None and age < min_age:
            blockers.append(f"{unit.label}: newest checkpoint is {age:.0f}s old (< --min-age {min_age:g}s)")
    print("would reset:" if not yes or (blockers and not force) else "resetting:", file=out)
    for unit in units:
        print(f"  {unit.label}  ({unit.path})", file=out)
    if blockers and not force:
        print("refused: " + "; ".join(blockers) + ". Is the daemon still running? Stop it (every replica "
              "sharing this state_dir), or pass --force.", file=out)
        return 1
    if not yes:
        print("refused: nothing was changed; pass --yes to reset (stop the daemon first).", file=out)
        return 1
    root = Path(cfg.state_dir)
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest, k = root / f"reset-{stamp}", 1
    while dest.exists():
        k += 1
        dest = root / f"reset-{stamp}-{k}"
    for unit in units:
        target = dest / unit.detector / unit.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        unit.path.rename(target)
        print(f"moved {unit.path} -> {target}", file=out)
    _print_after_reset(cfg, units, dest, out)
    return 0


def _print_after_reset(cfg: Config, units: list[Unit], dest: Path, out: TextIO) -> None:
    root = Path(cfg.state_dir)
    print(f"nothing was deleted; to undo (daemon stopped): move each directory back, e.g.\n"
          f"  mv {dest}/<detector>/<topic>-<partition> {root}/<detector>/", file=out)
    print("The daemon must be stopped while resetting, or its next checkpoint rewrites the state.", file=out)
    group = cfg.kafka.group_id if cfg.kafka else "<group_id>"
    bootstrap = cfg.kafka.bootstrap_servers[0] if cfg.kafka else "<broker:port>"
    print(f"The consumer group {group!r} keeps its committed offsets: on restart the reset partitions resume "
          "at those offsets with fresh state (models and entity state start empty).", file=out)
    by_topic: dict[str, list[int]] = {}
    for u in units:
        by_topic.setdefault(u.topic, []).append(u.partition)
    print("To also reprocess from the beginning (daemon stopped), rewind the group:", file=out)
    for topic, parts in sorted(by_topic.items()):
        print(f"  kafka-consumer-groups.sh --bootstrap-server {bootstrap} --group {group} "
              f"--topic {topic}:{','.join(map(str, sorted(parts)))} --reset-offsets --to-earliest --execute", file=out)



def reset_main(config_path: str, detector: str | None = None, partition: str | None = None, yes: bool = False,
               min_age: float = 0.0, force: bool = False, out: TextIO | None = None) -> int:
    """``rnnstream state reset``."""
    return reset_state(load_config_file(config_path), detector, partition, yes=yes, min_age=min_age,
                       force=force, out=out)
