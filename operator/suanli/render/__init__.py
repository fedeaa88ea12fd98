"""From one vendor-neutral job and its placement, the Kubernetes objects that run it.

Pure functions returning manifests as dicts (the dask-kubernetes habit): the controller decides and calls
them, so everything a pod gets — resources, images, rendezvous and collective environment, rank table —
is unit-tested without a cluster.
"""

from .gang import GangSlot, build_pod, build_rank_table_config_map, build_service, pod_name, spec_hash

__all__ = [
    "GangSlot",
    "build_pod",
    "build_rank_table_config_map",
    "build_service",
    "pod_name",
    "spec_hash",
]
