"""Shared numba pieces of every model's step kernel: input preparation, error calibration, history ring.

Every model's batch kernel (``rnnstream.models.<type>.kernel``) runs one loop over a micro-batch in
arrival order and, per event:

0. ``prefetch.prefetch_common``  asks for the state rows of the events a few places ahead;
1. ``observe.observe``           ``features.prepare_input`` normalises the features with the entity's
                                 online statistics (then updates them) and appends the time features:
                                 the model input ``u``; the error of the prediction made at the entity's
                                 previous event becomes a calibrated score in [0, 1] (``calibrate``);
2. the model's own cell step     advances the entity's recurrent state with ``u`` and writes the next
                                 prediction (the GRU's products use ``simd.matvec_bias``);
3. ``ring.finish_event``         appends ``u`` (compactly: without the calendar features, which the
                                 event time it keeps recomputes) and whether the event was an anomaly
                                 to the entity's history ring, if it keeps one (``pool_row``), and
                                 counts the event.

Helpers are inlined into the kernel, and kernels run without reference counting (``jit``). Scalar
parameters travel in one float64 vector whose layout ``params`` names.
"""
