"""Topology levels shared by the inventory, the planner and the job API.

Levels are ordered narrow to wide so that ``level <= required`` reads as "inside the allowed domain".
"""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """A topology level, narrowest first; a gang's *span* at a level is how many domains of it it uses."""

    LINK_DOMAIN = 0
    """Cards joined by an in-node fabric: an HCCS ring, an NVLink/NVSwitch clique, an xGMI hive."""
    NODE = 1
    RACK = 2
    """A rack, top-of-rack switch or hypernode: nodes one switch hop apart."""
    ZONE = 3
    REGION = 4

    @property
    def label(self) -> str:
        """The lower-case name used in the API, labels and messages (``link-domain``, ``rack``...)."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> Level:
        """Read a level from its API spelling; the error lists the accepted spellings."""
        key = text.strip().lower().replace("_", "-")
        for level in cls:
            if level.label == key:
                return level
        accepted = ", ".join(level.label for level in cls)
        raise ValueError(f"unknown topology level {text!r}: use one of {accepted}")


#: Levels above the node, narrow to wide: the ones a node's labels place it in.
DOMAIN_LEVELS: tuple[Level, ...] = (Level.RACK, Level.ZONE, Level.REGION)
