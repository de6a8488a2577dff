"""The package's version: the one place it is written (pyproject reads it from here).

A literal, not ``importlib.metadata``: reading the installed distribution's
metadata imports about 40 modules (email, zipfile, csv, tempfile...), ~15 ms
that every daemon with a control socket paid on its way to ready.
"""

__version__ = "0.2.0.dev0"
