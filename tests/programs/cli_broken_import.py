# A module that raises on import, at line 2 (tests copy it as broken.py).
raise ValueError("no config")
