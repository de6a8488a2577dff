"""A daemon whose main logs the same values in a record orjson takes and in one it refuses.

argv[1]: the options as JSON; argv[2]: a directory whose file names are listed
in the refused record (names that are not UTF-8 make orjson refuse it), and
mapped to their index in sorted order in a third one. A fourth holds the
floats JSON has no number for (in a dataclass and as an enum's value
too), a fifth mappings with keys that are not strings.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import sys
import uuid

import structlog

import aiodaemon


class Color(enum.Enum):
    RED = "red"


class Place(enum.Enum):
    """An enum whose value is a file name that is not UTF-8."""

    CAFE = os.fsdecode(b"caf\xe9")


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Shop:
    """A dataclass holding a name that is not UTF-8: orjson refuses it."""

    name: str


@dataclasses.dataclass
class Latency:
    """A dataclass holding a float JSON has no number for: orjson writes it itself."""

    p99_ms: float


class Reading(enum.Enum):
    """An enum whose value is a NaN (orjson writes an enum as its value)."""

    UNKNOWN = float("nan")


VALUES = {
    "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "id": uuid.UUID(int=1),
    "color": Color.RED,
    "point": Point(1, 2),
    "count": 7,
    "nested": {"ok": True, "ratio": 0.5},
}


async def main() -> None:
    log = structlog.get_logger()
    log.info("plain", **VALUES)
    log.info(
        "odd",
        files=sorted(os.listdir(sys.argv[2])),
        lone="a\ud800b",
        place=Place.CAFE,
        places={"here": Place.CAFE},
        shop=Shop(Place.CAFE.value),
        **VALUES,
    )
    log.info(
        "numbers",
        ratio=float("nan"),
        peak=float("inf"),
        floor=float("-inf"),
        nested={"ratios": [float("nan"), 0.5]},
        missing=None,
        latency=Latency(float("inf")),
        latencies=[Latency(float("-inf")), Latency(1.5)],
        reading=Reading.UNKNOWN,
    )
    log.info("by name", index={name: i for i, name in enumerate(sorted(os.listdir(sys.argv[2])))})
    # JSON keys are strings: 200 and "200" would both be written "200".
    log.info("by key", hits={200: 5, 404: 1}, mixed={200: "int", "200": "str", 1.5: "float"})


aiodaemon.run(main, **json.loads(sys.argv[1]))
