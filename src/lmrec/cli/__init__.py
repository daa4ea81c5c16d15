"""The ``lmrec`` command: a thin layer over the library (see ``main.py``)."""
