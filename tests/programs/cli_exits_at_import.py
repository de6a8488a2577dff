# A module that calls sys.exit(0) on import, at line 4 (tests copy it as quits.py).
import sys

sys.exit(0)
