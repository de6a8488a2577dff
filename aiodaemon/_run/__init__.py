"""The run phase: the event loop, lifecycle state machine, hooks, services, shutdown, upgrade."""
