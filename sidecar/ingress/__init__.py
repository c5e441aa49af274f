"""The node sidecar's Ingress: routing by host and path (routing.py), the listeners on the external address
(listener.py) and TLS with SNI (tls.py), over the same data plane as the mesh's own listeners."""
