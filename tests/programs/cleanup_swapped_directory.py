"""A failed start's cleanup, with the file's directory swapped for a symlink mid-way.

argv: the log directory, the directory the swapped-in symlink points to.
The launcher notes the log file it created, then removes it when the start
fails. That runs after the dropped account's code, and that account may own
a directory above the file: here it swaps the directory for a symlink at the
worst moment, just before the unlink (an audit hook makes that moment exact).
"""

from __future__ import annotations

import os
import sys

from aiodaemon._prefork._safeopen import CreatedFiles, open_append

logs, elsewhere = sys.argv[1], sys.argv[2]
created = CreatedFiles()
os.close(open_append(os.path.join(logs, "app.log"), created=created))
swapped = False


def swap_before_the_unlink(event: str, args: tuple[object, ...]) -> None:
    global swapped
    if event == "os.remove" and not swapped:
        swapped = True
        os.rename(logs, logs + ".moved")
        os.symlink(elsewhere, logs)


sys.addaudithook(swap_before_the_unlink)
created.remove()
print("swapped" if swapped else "not swapped")
