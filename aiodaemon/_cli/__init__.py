"""The ``aiodaemon`` command and the control client: synchronous, never imports asyncio."""
