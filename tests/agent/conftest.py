"""Fixtures of the agent tests; the helpers live in ``_agent_world.py``."""

from _agent_world import hub, make_agent, released  # type: ignore[import-not-found]

__all__ = ["hub", "make_agent", "released"]
