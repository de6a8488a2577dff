"""Daemon programs the tests start as real processes (linted and type-checked like the rest)."""
