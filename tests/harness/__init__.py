"""Reusable pieces for end-to-end tests that run real pods on one machine.

    from harness import cluster
    with cluster.Etcd(cluster.Net.pick()) as etcd: ...

See cluster.py: an etcd member and a pod (citus-init as PID 1 under unshare, with a private
/var/run/postgresql) on their own 127.x addresses. Process handling (liveness by /proc
start time, stop by PID) comes from scripts/lib/localcluster, shared with the local cluster.
"""
