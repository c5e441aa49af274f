"""Reaching the mesh from outside: LoadBalancer and NodePort Services and hostPorts on the agent's --external
addresses. Pure decisions here (which ports a Service claims, which nodePort it gets, where the node's sidecar
listens for it); the sidecar's listeners serve them like every Service address (sidecar/main.py)."""
