"""The pre-fork side: configure, acquire, detach, drop (and an upgrade successor's adoption).

Everything here runs in the launching process or before the daemon's event loop
exists, and never imports asyncio (tests/test_layers.py checks it).
"""
