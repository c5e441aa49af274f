"""Who a node certificate names and whether a gateway accepts it, pure: shared by the agent's PKI
(meshd/cluster/pki.py) and the sidecar's mesh gateway, which checks peers after the TLS handshake."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

NODE_PREFIX = "system:node:"  # as kubelets' client certificates
NODES_GROUP = "system:nodes"


def node_of(cert: x509.Certificate) -> str | None:
    """The node a certificate names (CN system:node:NAME in O system:nodes), or None."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if len(cns) != 1 or NODES_GROUP not in [o.value for o in orgs]:
        return None
    cn = str(cns[0].value)
    return cn.removeprefix(NODE_PREFIX) if cn.startswith(NODE_PREFIX) and len(cn) > len(NODE_PREFIX) else None


def peer_refusal(cert: x509.Certificate, *, revoked: Iterable[int], nodes: Iterable[str] | None) -> str | None:
    """Why a peer whose chain verified is refused anyway (None: accepted): not a node certificate, a revoked
    serial, or a node that no longer exists (`nodes` None: not known yet, not checked)."""
    node = node_of(cert)
    if node is None:
        return "not a node certificate (CN system:node:NAME, O system:nodes)"
    if cert.serial_number in set(revoked):
        return f"certificate {cert.serial_number:x} of node {node} is revoked"
    if nodes is not None and node not in set(nodes):
        return f"node {node} no longer exists"
    return None


__all__ = ["NODES_GROUP", "NODE_PREFIX", "node_of", "peer_refusal"]
