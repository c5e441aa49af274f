"""meshd's data plane: an HTTP/1.1 load-balancing proxy fed by the agent's endpoint stream."""
