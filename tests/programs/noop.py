"""A TARGET whose main returns at once."""

from __future__ import annotations


async def main() -> None:
    """Nothing to do."""
