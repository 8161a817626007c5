"""localcluster: simulated Kubernetes pods (citus-init as PID 1) on loopback addresses.

Used by scripts/demo, tests/e2e and scripts/bench; see cluster.py for the layout."""
from .cluster import (Cluster, ClusterError, ClusterSpec, Etcd, Pod, DEFAULT_EXTENSIONS,
                      PRIMARY_ROLES, atomic_write)
from . import paths, procs, tls

__all__ = ["Cluster", "ClusterError", "ClusterSpec", "Etcd", "Pod", "DEFAULT_EXTENSIONS",
           "PRIMARY_ROLES", "atomic_write", "paths", "procs", "tls"]
