"""Each Notifier message once, in order, then one send after close."""

from __future__ import annotations

from aiodaemon._run._systemd import Notifier

notifier = Notifier.from_env()
assert notifier is not None
notifier.ready("started")
notifier.reloading()
notifier.ready()
notifier.status("two\nlines")
notifier.failed("database down", 111)
notifier.watchdog()
notifier.stopping()
notifier.close()
print(notifier.send("STATUS=after close"))
