"""kopf wiring: start and stop the engine, expose its liveness. No decisions are made here.

kopf runs the process (start-up and clean-up hooks, the liveness endpoint) standalone. The engine does not
use kopf's watch handlers or its peering: it feeds itself with plain list+watch (informer.py — kopf's
per-event machinery cost a large share of the operator's CPU for what is a dictionary update) and elects its
leader with a Lease checked before every write (leader.py — kopf peering pauses handlers, but cannot stop a
write already decided in another thread).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from kubernetes import client, config

from ..settings import OperatorSettings
from .engine import Controller, identity
from .leader import LeaseElector


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: Any, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    settings.posting.level = logging.WARNING
    ours = OperatorSettings.from_env()
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    cfg = client.Configuration.get_default_copy()
    # A kept-alive connection for every thread that may call at once (request pool, gang and job workers,
    # status writers, events, the feeds): beyond the pool size idle connections are closed (urllib3's pool for
    # the feeds, controller/transport.py's for the engine's calls), and each new one costs a TLS handshake.
    cfg.connection_pool_maxsize = ours.bind_workers + 2 * ours.gang_workers + 16
    api = client.ApiClient(cfg)
    me = identity()
    api.user_agent = f"suanli/{me}"
    elector = None
    if ours.peering:
        elector = LeaseElector(api, os.environ.get("POD_NAMESPACE", "default"), f"{ours.peering}-engine", me)
    controller = Controller(api, ours, elector=elector)
    controller.check_api()
    controller.start_feeds()
    controller.start()
    if ours.metrics_port:
        controller.metrics.serve(ours.metrics_port, api=api)  # TokenReview + SubjectAccessReview per scraper
    memo.controller = controller
    logger.info("suanli engine started with %d accelerator nodes", len(controller.inventory))


@kopf.on.cleanup()
def shutdown(memo: Any, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.stop()


@kopf.on.probe(id="engine")
def engine_alive(memo: Any, **_: Any) -> dict[str, Any]:
    controller: Controller | None = memo.get("controller")
    if controller is None or not controller.alive():
        raise kopf.PermanentError("the scheduling engine is not running")
    return {"cycles": controller.cycles, "nodes": len(controller.inventory)}
