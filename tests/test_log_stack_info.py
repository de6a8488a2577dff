"""``stack_info=True``: the stack a record was logged from, for structlog as for stdlib."""

from __future__ import annotations

import json
from pathlib import Path

from .support import program, python, read_json_lines

PROGRAM = program("log_stack_info")


def last_frame(call: str) -> str:
    """The stack's last frame (as ``traceback`` writes it) for the program's line ``call``."""
    lines = PROGRAM.read_text().splitlines()
    number = next(n for n, line in enumerate(lines, 1) if line.strip() == call)
    function = next(
        line.split("def ", 1)[1].split("(")[0]
        for line in reversed(lines[:number])
        if line.startswith(("def ", "async def "))
    )
    return f'  File "{PROGRAM}", line {number}, in {function}\n    {call}'


def test_a_structlog_record_asking_for_its_stack_gets_it_as_a_stdlib_one_does(
    tmp_path: Path,
) -> None:
    """The stack up to the program's call, under ``stack_info``; none when it is False.

    structlog wrote ``"stack_info":true``: aiodaemon's chain had no renderer for it.
    """
    log = tmp_path / "d.jsonl"
    ran = python([PROGRAM, json.dumps({"detach": False, "log_file": str(log)})])
    assert ran.returncode == 0, ran.stderr
    records = {r["event"]: r for r in read_json_lines(log) if r["logger"] == "shop"}
    calls = {
        "structlog stack": 'log.info("structlog stack", stack_info=True)',
        "stdlib stack": 'logging.getLogger("shop").info("stdlib stack", stack_info=True)',
        "awaited stack": 'await log.ainfo("awaited stack", stack_info=True)',
    }
    for event, call in calls.items():
        stack = records[event]["stack_info"]
        assert isinstance(stack, str), event
        assert stack.startswith("Stack (most recent call last):\n"), event
        assert stack.endswith(last_frame(call)), event
        assert "/structlog/" not in stack, event
        assert "aiodaemon/_logs/" not in stack, event
    assert "stack_info" not in records["no stack"]
