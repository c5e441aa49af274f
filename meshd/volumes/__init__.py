"""What pods take from ConfigMaps, Secrets and the downward API at run time: env resolved at container start,
volume files written atomically (the kubelet's `..data` symlink swap) and kept in step, registry credentials."""
