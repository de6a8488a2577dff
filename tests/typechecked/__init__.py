"""Programs written the way aiodaemon's users write theirs, for type checkers only.

Never run or imported by the suite: tests/test_user_typing.py checks them with
mypy --strict and pyright --strict, as a user's checker sees aiodaemon. Each
``# type: ignore[...]`` marks a mistake aiodaemon refuses at run time, which both
checkers must report (an unused ignore is an error to both).
"""
