"""From one vendor-neutral job and its placement, the Kubernetes objects that run it.

Pure functions returning manifests as dicts (the dask-kubernetes habit): the controller decides and calls
them, so everything a pod gets — resources, images, launch environment (:mod:`.launch`), the Ascend rank table
and its delivery (:mod:`.ranktable`) — is unit-tested without a cluster.
"""

from .gang import GangSlot, build_pod, build_rank_table_config_map, build_service, pod_name, spec_hash
from .ranktable import rank_table_schema, rank_table_stale

__all__ = [
    "GangSlot",
    "build_pod",
    "build_rank_table_config_map",
    "build_service",
    "pod_name",
    "rank_table_schema",
    "rank_table_stale",
    "spec_hash",
]
