"""Shared numba pieces of every model's step kernel: input preparation, error calibration, history ring.

Every model's batch kernel (``rnnstream.models.<type>.kernel``) runs one loop over a micro-batch in
arrival order and, per event, calls:

1. ``features.prepare_input``  normalise the features with the entity's online statistics
                                (then update them) and append the time features: the model input ``u``;
2. the model's own ``predict``: nothing to do, the prediction for this event was made at the previous one;
3. ``calibrate.score_event``   turn the prediction error into a calibrated score in [0, 1];
4. the model's own cell step   advance the entity's recurrent state with ``u``, write the next prediction;
5. ``ring.ring_write``         append ``u`` (and whether the event was an anomaly) to the entity's history.

Scalar parameters travel in one float64 vector whose layout ``params.KP`` names.
"""
