"""Roles, the modules they start, and the supervisor that runs them in one event loop."""
