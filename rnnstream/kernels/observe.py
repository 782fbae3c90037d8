"""The model-independent half of one event: prepare the input, measure the error, score it."""

from __future__ import annotations

import math

from .calibrate import (FLAG_LATE, FS_MERR, FS_PERR, FS_PREV, FS_PROFILE_ERR, KIND_NONE, PF, PROFILE_ERR_EVENTS,
                        PROFILE_GATE, SC_FEAT, SC_N, score_event)
from .features import prepare_input
from .jit import device
from .params import KP_BLEND, KP_LATE, KP_PROFILE_CAP, KP_PROFILE_RATE, KP_ZCLIP

MIN_MAE = 1e-12     # below this, neither forecaster has made an error yet: equal weights


@device
def blend_weight(m_err, p_err):
    """Weight of the model's prediction against persistence's: ``p^2 / (m^2 + p^2)`` for their running
    mean absolute errors ``m`` and ``p``, 0.5 while both are 0: the two forecasts weighted by their
    inverse squared errors, as the classic combination of forecasts weights them by their inverse
    variances (Bates and Granger, 1969; a mean absolute error is proportional to the deviation of a
    Gaussian or Laplace error). Not fitted: the errors' correlation is not estimated."""
    d = m_err * m_err + p_err * p_err
    if d < MIN_MAE * MIN_MAE:
        return 0.5
    return p_err * p_err / d


HEAD_WEIGHT = 0.5   # the scored scale is the geometric mean of the head's and the scorer's running scale


@device
def scale_by_model(err, log_scale):
    """The model's scale head's part of the residual: ``err[f] /=
    exp(HEAD_WEIGHT * log_scale[f])``. The scorer then divides by its running mean absolute value of
    these (``s_f``) and fits their tail as before, so the scale an error is set against is the
    geometric mean of the scale the model expected for this entity at this event and the entity's
    running scale (the head's log-scales are centred at 0 on its training windows, see
    :func:`rnnstream.models.gru.bptt.scale_level`: the running scale keeps the level, the head says
    where this entity's error is larger or smaller than usual). The head starts at 0, where this is
    the identity. With the head's full weight (1) both corpora scored lower (docs/detection.md)."""
    for f in range(err.shape[0]):
        err[f] = err[f] * math.exp(-HEAD_WEIGHT * float(log_scale[f]))


@device
def observe(i, x, t, s, count, last_ts, nmean, nvar, pred, log_scale, sc, kp, u, err, msd,
            out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """Handle event ``i`` of entity ``s`` up to (not including) the model's state update.

    Fills ``u`` with the model input, writes the event's outputs (the prediction made at the entity's
    previous event, in the features' own units; the normalised observation; the error; the score and
    flags) and returns the flags. ``msd`` is a (2, F) scratch for the pre-event mean and deviation.

    With a daily profile and ``profile_cap`` c > 0, the error that is scored is at most c times the
    distance between the normalised value and the profile at its bin (its last ``2F`` inputs hold
    the profile), once that bin has been through its running-mean phase (``1 / profile_rate`` values),
    for a feature whose profile explains it (its running distance from the profile, before this event,
    at most ``PROFILE_GATE``): a value the time of day explains well does not count as a surprise,
    however the model did; where the time of day explains nothing (a random walk, regimes switching at
    random hours) a value near its time-of-day mean is so by chance, and is scored as it is. The
    running distance (``FS_PROFILE_ERR``, exponentially weighted with memory ``PROFILE_ERR_EVENTS``,
    from ``PROFILE_ERR0``) takes in every value whose bin held one before.
    ``out_err`` stays the model's own error.

    With ``persistence_blend`` B > 0, the error scored (and ``out_pred``) is that of a blend of the
    model's prediction and persistence (the entity's previous raw value, normalised like this event),
    weighted by :func:`blend_weight` (inverse squared errors) of their running mean absolute errors
    before this event (memory B events, per feature, in the statistics row): where the model forecasts
    worse than persistence the scored prediction moves towards persistence, where better towards the
    model. ``out_err`` is the
    model's own error, unblended. Not guaranteed: that the blend forecasts better than both (it is a
    fixed rule, not a fitted combination).

    With a model's scale head (``log_scale`` (slots, F) float32, not empty; a model without one passes
    an empty array, e.g. ``pred[:0]``), each scored error is divided by ``exp(HEAD_WEIGHT *
    log_scale[s, f])``, from the log-scale the model predicted at the entity's previous event, as ``pred`` (see
    :func:`scale_by_model`); the scorer's own running scale then measures the errors in those units.

    A late event (older than the entity's previous event by more than ``kp[KP_LATE]`` seconds) is
    refused: it returns ``FLAG_LATE`` having touched no state, and the model kernel skips it.
    """
    n = count[s]
    n_features = x.shape[0]
    if n > 0 and t < last_ts[s] - kp[KP_LATE]:
        for f in range(n_features):
            out_pred[i, f] = 0.0
            out_z[i, f] = 0.0
            out_kind[i, f] = KIND_NONE
        out_err[i] = 0.0
        out_score[i] = 0.0
        out_flag[i] = FLAG_LATE
        return FLAG_LATE
    in_bin = prepare_input(x, t, s, count, last_ts, nmean, nvar, sc, kp, u, msd)
    acc = 0.0
    blend = kp[KP_BLEND]
    zclip = kp[KP_ZCLIP]
    a_blend = 0.0
    if blend > 0.0 and n > 0:
        a_blend = max(1.0 / (sc[s, SC_N] + 1.0), 1.0 / blend)
    for f in range(n_features):
        if n > 0:
            p = float(pred[s, f])
            e_m = float(u[f] - pred[s, f])    # in the model's float32, as it was trained on
            err[f] = e_m
            if blend > 0.0:
                k = SC_FEAT + PF * f
                persist = min(max((sc[s, k + FS_PREV] - msd[0, f]) / msd[1, f], -zclip), zclip)
                w = blend_weight(sc[s, k + FS_MERR], sc[s, k + FS_PERR])
                e_p = float(u[f]) - persist
                sc[s, k + FS_MERR] += a_blend * (abs(e_m) - sc[s, k + FS_MERR])
                sc[s, k + FS_PERR] += a_blend * (abs(e_p) - sc[s, k + FS_PERR])
                p = w * p + (1.0 - w) * persist
                err[f] = w * e_m + (1.0 - w) * e_p
            out_pred[i, f] = msd[0, f] + msd[1, f] * p
            acc += e_m * e_m
        else:
            err[f] = 0.0
            out_pred[i, f] = x[f]
        out_z[i, f] = u[f]
    model_err = math.sqrt(acc / n_features)
    cap = kp[KP_PROFILE_CAP]
    if cap > 0.0 and in_bin > 0.0:
        k = u.shape[0] - 2 * n_features
        ready = in_bin * kp[KP_PROFILE_RATE] >= 1.0
        for f in range(n_features):
            dist = abs(u[f] - u[k + f])
            j = SC_FEAT + PF * f + FS_PROFILE_ERR
            if ready and sc[s, j] <= PROFILE_GATE:
                limit = cap * dist
                err[f] = min(max(err[f], -limit), limit)
            sc[s, j] += (dist - sc[s, j]) / PROFILE_ERR_EVENTS
    if n > 0 and log_scale.shape[0] > 0:
        scale_by_model(err, log_scale[s])
    score, flags = score_event(err, x, msd[1], u, n, t, s, sc, kp, out_kind[i])
    out_err[i] = model_err
    out_score[i] = score
    out_flag[i] = flags
    return flags
