"""Several agents on one shared store (etcd): nodes and their heartbeat Leases, leader election through an
etcd lease, and the controller following what other agents write. See DESIGN.md "Several machines"."""
