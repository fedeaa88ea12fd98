"""The securityContext every pod Suanli creates gets: Pod Security ``restricted`` unless the job says otherwise.

The default passes the ``restricted`` profile, so jobs run in namespaces that enforce it. A job may replace
any key of it (an image that runs as root sets ``runAsNonRoot: false``); whether the submitting user may ask
for that is decided at admission (the chart's ValidatingAdmissionPolicy, docs/security.md), and the
namespace's own Pod Security level still judges the pod the operator creates.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..api.aitrainingjob import ReplicaTemplate

POD_DEFAULT: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
"""Pod level: no root user, the runtime's default seccomp filter (both required by ``restricted``)."""
CONTAINER_DEFAULT: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""Container level: no setuid escalation, no Linux capabilities (both required by ``restricted``)."""


def _merged(default: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Suanli's default with each top-level key the job sets replaced whole (capabilities too: a job that
    sets them says exactly which it wants). Copies through JSON, which these are: copy.deepcopy of the two,
    for every container of every pod, was ~2 % of the operator's CPU while gangs bound (yappi, issue 12)."""
    return {**orjson.loads(orjson.dumps(default)), **(orjson.loads(orjson.dumps(override)) if override else {})}


def secure_pod(spec: dict[str, Any], template: ReplicaTemplate) -> None:
    """Give a rendered pod spec its pod and container securityContext (every container: the trainer and
    any the renderer adds)."""
    spec["securityContext"] = _merged(POD_DEFAULT, template.pod_security_context)
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        container["securityContext"] = _merged(CONTAINER_DEFAULT, template.security_context)
