"""NetworkPolicy semantics (networking.k8s.io/v1) for rendered policies: which peer may reach
which port, evaluated like the API documents it, so tests can state "who can connect to
5432" instead of comparing YAML.

A peer is a dict: {"namespace": str, "namespace_labels": {...}, "labels": {...}} for a pod
(labels None for something that is not a pod), "ip" for ipBlock rules.
"""
import ipaddress


def selector_matches(selector, labels):
    """A LabelSelector; {} selects everything, None nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(rule_peer, peer, policy_namespace):
    if "ipBlock" in rule_peer:
        ip = peer.get("ip")
        if not ip:
            return False
        block = rule_peer["ipBlock"]
        addr = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(block["cidr"])
        if addr.version != net.version or addr not in net:
            return False
        return not any(addr in ipaddress.ip_network(x) for x in block.get("except") or []
                       if ipaddress.ip_network(x).version == addr.version)
    if peer.get("labels") is None:
        return False  # pod and namespace selectors select pods only
    ns_sel, pod_sel = rule_peer.get("namespaceSelector"), rule_peer.get("podSelector")
    if ns_sel is None and peer["namespace"] != policy_namespace:
        return False
    if ns_sel is not None and not selector_matches(ns_sel, peer.get("namespace_labels")):
        return False
    return pod_sel is None or selector_matches(pod_sel, peer["labels"])


def port_matches(ports, port, protocol):
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        end = p.get("endPort", p["port"])
        if p["port"] <= port <= end:
            return True
    return False


def selects(policy, pod_labels, namespace):
    return policy["metadata"]["namespace"] == namespace and \
        selector_matches(policy["spec"]["podSelector"], pod_labels)


def _allowed(policies, direction, pod_labels, namespace, peer, port, protocol):
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating = [p for p in policies if selects(p, pod_labels, namespace)
                 and direction in p["spec"].get("policyTypes", ["Ingress"])]
    if not isolating:
        return True  # not isolated in this direction
    for p in isolating:
        for rule in p["spec"].get(key) or []:
            if not port_matches(rule.get("ports"), port, protocol):
                continue
            peers = rule.get(peers_key)
            if not peers or any(peer_matches(x, peer, namespace) for x in peers):
                return True
    return False


def ingress_allowed(policies, pod_labels, namespace, source, port, protocol="TCP"):
    """May `source` open a connection to port/protocol of a pod with pod_labels?"""
    return _allowed(policies, "Ingress", pod_labels, namespace, source, port, protocol)


def egress_allowed(policies, pod_labels, namespace, destination, port, protocol="TCP"):
    """May a pod with pod_labels open a connection to destination's port/protocol?"""
    return _allowed(policies, "Egress", pod_labels, namespace, destination, port, protocol)
