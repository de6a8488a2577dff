"""A main that only leaves a ``main-ran`` file in the working directory."""

from pathlib import Path


async def main() -> None:
    Path("main-ran").touch()
