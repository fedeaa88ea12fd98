"""Fixtures shared by the unit tests: the agent's probe library and fake vendor drivers."""

from .test_agent_support import driver, libs

__all__ = ["driver", "libs"]
