"""meshd: the core of Kubernetes on one machine."""
