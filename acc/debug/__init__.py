"""The parts of ``acc.DebugController``, one module per concern (private: import from ``acc``).

* ``engine``: the controller's state and the loop's side of the pause point (serve, bind, unbind).
* ``control``: the pause/step/resume/stop state machine and waiting for the loop.
* ``loops``: what the controller needs from a loop (a Trainer, or a hand-written loop).
* ``breakpoints``: nan / critical / step / every / predicate breakpoints.
* ``batch`` and ``png``: cloning a batch and showing it (PNG grid or tensor summary).
* ``step_data`` and ``tables``: per-step data tagged with its step, per-feature tables.
* ``features``: the feature parameter and its update over the optimizer step (``grad_delta``).
* ``forces``, ``cosine``, ``watches``: force detail, cosine matrices, watched-feature trajectories.
"""
