"""Traffic between nodes: the mesh gateway (inbound, mutual TLS, one pod endpoint per connection) and the
outbound connector every codec opens upstream connections through (sidecar/mesh/connect.py)."""
