"""Three multiprocessing workers (fork) logging through the parent's sink."""

from __future__ import annotations

import json
import logging
import multiprocessing

import structlog

from tests.programs.logchild import start_child

writer = start_child()


def work(n: int) -> None:
    structlog.get_logger("worker").info("work", n=n)
    for _ in range(500):
        logging.getLogger("worker.stdlib").info("filler")


fork = multiprocessing.get_context("fork")
procs = [fork.Process(target=work, args=(n,)) for n in range(3)]
for p in procs:
    p.start()
for p in procs:
    p.join()
print(json.dumps({"closed": writer.close(10), "codes": [p.exitcode for p in procs]}))
