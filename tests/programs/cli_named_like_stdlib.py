# A program whose file the tests name like a standard module (json.py, queue.py).
import asyncio


async def main() -> None:
    """Use the default executor, whose threads need the standard library's queue."""
    await asyncio.to_thread(print, "main ran")
