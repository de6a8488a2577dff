# A module whose startup hook is a sync function: the decorator, at line 6, refuses it
# (tests copy it as bad_hook.py; mypy refuses it too, hence the ignore).
import aiodaemon


@aiodaemon.on_startup  # type: ignore[type-var]
def open_db() -> None:
    """Sync by mistake: aiodaemon.on_startup wants an async function."""


async def main() -> None:
    """Never run: the import fails first."""
