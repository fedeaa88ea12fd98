"""kopf wiring: watch nodes, pods and jobs, feed the engine, expose health. No decisions are made here."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kopf
from kubernetes import client, config

from ..settings import OperatorSettings
from .engine import Controller
from .leader import LeaseElector


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: Any, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    # Watches are long polls: let the server end them before our client gives up on them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    # A dead peer's record pauses the standby's job watch until it expires: keep that close to the engine
    # Lease (15 s), not kopf's default minute, so a failover does not leave new jobs unseen for long.
    settings.peering.lifetime = 20
    ours = OperatorSettings.from_env()
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    cfg = client.Configuration.get_default_copy()
    # A kept-alive connection for every thread that may call at once (API pool, gang and job workers,
    # kopf's own): beyond the pool size urllib3 opens and drops extra connections, a TLS handshake each.
    cfg.connection_pool_maxsize = ours.bind_workers + 2 * ours.gang_workers + 16
    api = client.ApiClient(cfg)
    elector = None
    if ours.peering:
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        elector = LeaseElector(api, os.environ.get("POD_NAMESPACE", "default"), f"{ours.peering}-engine", identity)
    controller = Controller(api, ours, elector=elector)
    controller.check_api()
    controller.start_feeds()
    controller.start()
    if ours.metrics_port:
        controller.metrics.serve(ours.metrics_port)
    memo.controller = controller
    logger.info("suanli engine started with %d accelerator nodes", len(controller.inventory))


@kopf.on.cleanup()
def shutdown(memo: Any, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.stop()


# No watch handlers: nodes, pods and jobs reach the engine through its own list+watch feeds
# (controller/informer.py). kopf runs the process: start-up and clean-up, liveness probes, peering.


@kopf.on.probe(id="engine")
def engine_alive(memo: Any, **_: Any) -> dict[str, Any]:
    controller: Controller | None = memo.get("controller")
    if controller is None or not controller.alive():
        raise kopf.PermanentError("the scheduling engine is not running")
    return {"cycles": controller.cycles, "nodes": len(controller.inventory)}
