"""Python imports this at start-up in the operator that bench/e2e.py starts with ``--qps`` (its directory is
put first on that process's PYTHONPATH): the engine's API calls (``KubeApi.request``: creates, binds,
patches, events) then wait on the trivial binder's token bucket at ``BENCH_THROTTLE_QPS`` calls a second,
``BENCH_THROTTLE_BURST`` at once, as kube-scheduler's ``clientConnection.qps/burst`` hold its client. Only
for an operator that has no client limit of its own; the watches and kopf's few calls are not held. Says on
stderr (the operator's log) whether it took effect, and the bench reads that line.
"""

import os
import sys

_qps = float(os.environ.get("BENCH_THROTTLE_QPS") or 0)
if _qps > 0:
    try:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from suanli.controller.kubeapi import KubeApi
        from trivial_binder import TokenBucket
    except ImportError as exc:
        print(f"bench throttle: not applied ({exc})", file=sys.stderr, flush=True)
    else:
        _burst = int(os.environ.get("BENCH_THROTTLE_BURST") or 2 * _qps)
        _bucket = TokenBucket(_qps, _burst)
        _request = KubeApi.request

        def _held(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            _bucket.take()
            return _request(self, *args, **kwargs)

        KubeApi.request = _held  # type: ignore[method-assign]
        print(f"bench throttle: KubeApi.request at {_qps:g} qps, burst {_burst}", file=sys.stderr, flush=True)
