"""Operator settings from the environment (the Helm chart's env): a bad value fails the start and names itself."""

from __future__ import annotations

import pytest

from suanli.settings import OperatorSettings


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUANLI_NODE_LOST_GRACE_SECONDS", "SUANLI_DELETE_GRACE_SECONDS", "SUANLI_PREEMPTION"):
        monkeypatch.delenv(name, raising=False)
    assert OperatorSettings.from_env().node_lost_grace_seconds == 60.0
    monkeypatch.setenv("SUANLI_NODE_LOST_GRACE_SECONDS", "0")
    monkeypatch.setenv("SUANLI_DELETE_GRACE_SECONDS", "5")
    monkeypatch.setenv("SUANLI_PREEMPTION", "off")
    settings = OperatorSettings.from_env()
    assert (settings.node_lost_grace_seconds, settings.delete_grace_seconds, settings.preemption) == (0.0, 5, False)
    monkeypatch.setenv("SUANLI_NODE_LOST_GRACE_SECONDS", "2.5")
    assert OperatorSettings.from_env().node_lost_grace_seconds == 2.5


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_node_lost_grace_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SUANLI_NODE_LOST_GRACE_SECONDS", value)
    with pytest.raises(ValueError, match=r"SUANLI_NODE_LOST_GRACE_SECONDS=.*seconds >= 0"):
        OperatorSettings.from_env()
