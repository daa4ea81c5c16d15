"""Edge export of a run's served model (``lmrec export``); the runtime is :mod:`lmrec.edge`."""
