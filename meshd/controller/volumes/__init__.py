"""PersistentVolumeClaims, PersistentVolumes and StorageClasses: binding decisions, provisioning, pod volumes."""
