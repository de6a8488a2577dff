"""The testing kit's parts behind :mod:`aiodaemon.testing` and its pytest plugin."""
