"""The per-entity history ring: the last W model inputs, from which training windows are cut."""

from __future__ import annotations

from .jit import device


@device
def finish_event(s, t, u, flag, count, last_ts, ring_in, ring_flag):
    """Append input ``u`` and anomaly ``flag`` to entity ``s``'s ring, then count the event.

    The ring position is ``count % W``, so the ring needs no cursor of its own; after the call the
    newest input sits at ``(count - 1) % W``.
    """
    w = ring_in.shape[1]
    p = count[s] % w
    for j in range(u.shape[0]):
        ring_in[s, p, j] = u[j]
    ring_flag[s, p] = flag
    count[s] += 1
    last_ts[s] = t
