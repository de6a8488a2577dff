"""Run-side logging: structlog and stdlib ``logging`` rendered off the loop, one writer thread.

The sinks themselves (file, stream, syslog) are opened on the terminal, so they
live in :mod:`aiodaemon._prefork`.
"""
