"""A program that configures structlog itself at import, as many do; options as JSON in argv[1].

Also a TARGET (``tests.programs.log_own_config:main``).

Its own processors (adding a key, redacting one, dropping an event, one that
fails), structlog's renderer and a factory printing on stdout, loggers cached
on first use: used, named and bound at import, before aiodaemon starts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

import aiodaemon

Record = MutableMapping[str, Any]


def add_service(logger: Any, method_name: str, event_dict: Record) -> Record:
    event_dict["service"] = "shop"
    return event_dict


def redact_card(logger: Any, method_name: str, event_dict: Record) -> Record:
    if "card" in event_dict:
        event_dict["card"] = "****"
    return event_dict


def drop_health_checks(logger: Any, method_name: str, event_dict: Record) -> Record:
    if event_dict["event"] == "health check":
        raise structlog.DropEvent
    return event_dict


def fail_on_poison(logger: Any, method_name: str, event_dict: Record) -> Record:
    if event_dict.get("poison"):
        raise KeyError("poison")
    return event_dict


structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        fail_on_poison,
        add_service,
        redact_card,
        drop_health_checks,
        structlog.processors.CallsiteParameterAdder(
            [structlog.processors.CallsiteParameter.FUNC_NAME]
        ),
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ],
    logger_factory=structlog.PrintLoggerFactory(),
    cache_logger_on_first_use=True,
)

log = structlog.get_logger()
log.info("at import")
named = structlog.get_logger("payments")
named.info("named at import")
bound = structlog.get_logger().bind(component="db")


async def main() -> None:
    log.info("module logger", card="4111")
    named.debug("below the level")
    named.info("named logger")
    bound.info("bound at import")
    structlog.get_logger().info("fresh logger")
    log.info("health check")
    log.info("poisoned", poison=True, card="4111")
    try:
        raise ValueError("bad row")
    except ValueError:
        bound.exception("failed")


if __name__ == "__main__":
    aiodaemon.run(main, **json.loads(sys.argv[1]))
