"""What `kubectl explain` says about the kinds meshd serves and their most-used fields: short descriptions written
for meshd (its own words, and where meshd does a thing its own way, what it does), kept here as data only.
meshd.api.openapi puts them into its OpenAPI documents; a type or field not listed keeps the table's one-liner or
none. Keys are the names of meshd.api.openapi.TYPES and of their fields."""

from __future__ import annotations

# the fields every kind has at its top, "{kind}" replaced by the kind's name
OBJECT_FIELDS: dict[str, str] = {
    "apiVersion": "The API group and version this {kind} is written in, e.g. v1 or apps/v1.",
    "kind": "The type of this object: {kind}.",
    "metadata": "The {kind}'s name, namespace, labels and annotations, and what the server records about it.",
    "spec": "What you want this {kind} to be. Controllers work to make the status match it.",
    "status": "What the {kind} is right now, as observed and written by meshd. Read-only.",
}

TYPES: dict[str, str] = {
    "ObjectMeta": "Identity and bookkeeping of an object: the name and namespace you choose, the labels and "
                  "annotations you attach, and the fields the server fills in (uid, resourceVersion, timestamps).",
    "Pod": "One or more containers started together on one node, sharing an address, a hostname and volumes. "
           "Usually created by a Deployment, StatefulSet or Job rather than by hand.",
    "PodSpec": "The containers of a pod and how they run: volumes, restart behaviour, scheduling and security.",
    "PodTemplateSpec": "The pod a controller stamps out: its labels (which must match the selector) and its spec.",
    "Container": "One program of a pod: the image it runs, its command, ports, environment, mounts, resources and "
                 "health checks.",
    "ContainerPort": "A port a container listens on. Naming it lets Services and probes refer to it by name.",
    "Probe": "A periodic health check of a container: exactly one of httpGet, tcpSocket, exec or grpc, with its "
             "timing and thresholds.",
    "ResourceRequirements": "CPU and memory for a container: requests are what scheduling counts, limits what "
                            "the container may not exceed.",
    "EnvVar": "One environment variable of a container: a literal value or one read from elsewhere.",
    "VolumeMount": "Where a volume of the pod appears inside this container's filesystem.",
    "Volume": "Storage a pod's containers can mount: a scratch directory, a ConfigMap, a Secret or a claim.",
    "Service": "A stable name and address in front of a changing set of pods: meshd's DNS answers the name and the "
               "node's sidecar balances connections to the address over the ready pods the selector picks.",
    "ServiceSpec": "Which pods a Service reaches and how: its selector, ports and type.",
    "ServicePort": "One port of a Service and the pod port it forwards to.",
    "Deployment": "Keeps a number of identical pods running and replaces them gradually when their template "
                  "changes, through one ReplicaSet per template version.",
    "DeploymentSpec": "How many pods a Deployment runs, from which template, and how it rolls out changes.",
    "DeploymentStrategy": "How a Deployment replaces old pods with new ones.",
    "RollingUpdateDeployment": "How far a rolling update may go above and below the wanted number of pods.",
    "StatefulSet": "Pods with stable identities: NAME-0, NAME-1, ... each keeps its name, its DNS name under the "
                   "governing Service and its own volume claims across restarts and rescheduling.",
    "StatefulSetSpec": "How many numbered pods a StatefulSet runs, from which template, with which claims, and how "
                       "it orders their start and updates.",
    "StatefulSetUpdateStrategy": "How a StatefulSet replaces its pods after a template change.",
    "Job": "Runs pods until a number of them finish successfully, retrying failures up to a limit.",
    "JobSpec": "How many successful pods a Job needs, how many may run at once, and how long and how often it may "
               "try.",
    "CronJob": "Creates a Job on a schedule written in cron syntax.",
    "CronJobSpec": "When a CronJob fires, what Job it creates, and what happens if runs overlap or are missed.",
    "ConfigMap": "Non-secret configuration as key/value pairs, for pods to read as environment variables or as "
                 "files in a volume.",
    "Secret": "Sensitive values (passwords, tokens, keys) for pods to read as environment variables or files. The "
              "API shows data base64-encoded; that is an encoding, not encryption.",
    "LabelSelector": "Picks objects by their labels: every matchLabels pair and every matchExpressions rule must "
                     "hold. An empty selector picks everything.",
}

FIELDS: dict[str, dict[str, str]] = {
    "ObjectMeta": {
        "name": "The object's name, unique among objects of its kind in its namespace. Set at creation, never "
                "changed.",
        "namespace": "The namespace the object lives in; \"default\" when none is given. Cluster-wide kinds have "
                     "none.",
        "labels": "Key/value pairs you attach to organise and select objects; selectors of Services and "
                  "controllers match on them.",
        "annotations": "Key/value pairs for tools and people, never used to select. meshd reads its own meshd.io/* "
                       "annotations (e.g. a Service's load-balancing algorithm).",
        "uid": "A unique id the server gives the object when it is created. Read-only.",
        "resourceVersion": "The version of the object in the store, changed by every write. Send it back on an "
                           "update to refuse the write if someone else changed the object meanwhile.",
        "generation": "A counter of changes to the spec, increased by the server. Read-only.",
        "creationTimestamp": "When the object was created (RFC 3339, UTC). Read-only.",
        "deletionTimestamp": "When the object's deletion was requested; set while it waits for finalizers or its "
                             "pods to stop. Read-only.",
        "ownerReferences": "The objects this one belongs to; deleting the owner deletes it too.",
        "managedFields": "Which field manager set which fields (server-side apply bookkeeping). Rarely edited by "
                         "hand.",
    },
    "PodSpec": {
        "containers": "The containers of the pod, started together. At least one is required; names must be "
                      "unique within the pod.",
        "initContainers": "Containers that run to completion one after another before the regular containers "
                          "start. A failing one is retried per restartPolicy.",
        "volumes": "The volumes the pod's containers may mount, by name.",
        "restartPolicy": "What happens when a container exits: Always (the default), OnFailure or Never.",
        "terminationGracePeriodSeconds": "How long a stopping pod's containers get after SIGTERM before they are "
                                         "killed. meshd first takes the pod out of its Services and waits for "
                                         "in-flight requests within this time.",
        "nodeName": "The node the pod runs on. Normally set by the scheduler; setting it yourself skips "
                    "scheduling.",
        "hostname": "The pod's hostname; defaults to the pod's name.",
        "subdomain": "With a headless Service of this name in the namespace, the pod gets the DNS name "
                     "HOSTNAME.SUBDOMAIN.NAMESPACE.svc.cluster.local.",
        "securityContext": "Security settings for every container of the pod: user, group and file-system group.",
        "nodeSelector": "Labels a node must have for the pod to be scheduled there.",
        "hostNetwork": "Run the pod in the node's network namespace instead of its own.",
    },
    "PodTemplateSpec": {
        "metadata": "Labels and annotations the pods get. The labels must match the controller's selector.",
        "spec": "The spec every pod made from this template gets.",
    },
    "Container": {
        "name": "The container's name, unique in the pod (a DNS label). Used by logs, exec and restarts.",
        "image": "The image to run, e.g. meshd/busybox:latest or registry:5000/app:v2.",
        "imagePullPolicy": "When to pull the image: Always, IfNotPresent or Never. Defaults to Always for a :latest "
                           "or untagged image, else IfNotPresent.",
        "command": "Replaces the image's ENTRYPOINT. Not run in a shell: use [\"sh\", \"-c\", \"...\"] for one. "
                   "$(VAR) refers to the container's environment.",
        "args": "Replaces the image's CMD (the arguments of the entrypoint). $(VAR) refers to the environment.",
        "workingDir": "The directory the command starts in; the image's own when empty.",
        "env": "Environment variables to set in the container, in order; later ones may use earlier ones with "
               "$(NAME).",
        "ports": "The ports the container listens on. Listing them is informational, but names given here can "
                 "be used by Services (targetPort) and probes.",
        "resources": "The CPU and memory the container requests and may not exceed.",
        "volumeMounts": "The pod's volumes to mount into this container, and where.",
        "livenessProbe": "A check that restarts the container when it keeps failing.",
        "readinessProbe": "A check that decides whether the pod receives traffic from its Services; a failing pod "
                          "is taken out of the endpoints but not restarted.",
        "startupProbe": "A check that holds back the liveness and readiness probes until the container has "
                        "started; failing it too long restarts the container.",
        "lifecycle": "Actions to run around the container's life, such as a preStop hook before it is stopped.",
        "restartPolicy": "Only for init containers: Always makes it a sidecar that keeps running beside the "
                         "regular containers.",
        "securityContext": "Security settings for this container: user, capabilities, privileges, read-only root.",
    },
    "ContainerPort": {
        "name": "A name for the port (an IANA service name, at most 15 characters), unique in the pod.",
        "containerPort": "The port number the container listens on (1-65535).",
        "protocol": "TCP (the default) or UDP.",
        "hostPort": "Also expose the port on the node at this number.",
        "hostIP": "The node address the hostPort binds to.",
    },
    "Probe": {
        "httpGet": "Probe with an HTTP GET; any status from 200 to 399 is a success.",
        "tcpSocket": "Probe by opening a TCP connection; success when it connects.",
        "exec": "Probe by running a command in the container; success when it exits 0.",
        "grpc": "Probe with the standard gRPC health check service.",
        "initialDelaySeconds": "Seconds to wait after the container starts before the first probe.",
        "periodSeconds": "Seconds between probes (default 10). meshd accepts fractions such as 0.5; the API "
                         "shows them rounded up and keeps the exact value in an annotation.",
        "timeoutSeconds": "Seconds a single probe may take before it counts as a failure (default 1).",
        "successThreshold": "Consecutive successes needed after a failure to count as passing again (default 1).",
        "failureThreshold": "Consecutive failures needed to count as failing (default 3).",
        "terminationGracePeriodSeconds": "The grace period for a container a failing liveness or startup probe "
                                         "stops; overrides the pod's.",
    },
    "HTTPGetAction": {
        "path": "The path to request, e.g. /healthz.",
        "port": "The port to connect to: a number or the name of a container port.",
        "host": "The host to connect to; the pod's own address when empty.",
        "scheme": "HTTP (the default) or HTTPS (the certificate is not verified).",
        "httpHeaders": "Extra headers to send with the request.",
    },
    "TCPSocketAction": {"port": "The port to connect to: a number or the name of a container port."},
    "ExecAction": {"command": "The command to run, not in a shell; exit status 0 means healthy."},
    "GRPCAction": {"port": "The port of the gRPC server.",
                   "service": "The service name to ask about; the server's overall health when empty."},
    "ResourceRequirements": {
        "requests": "The minimum the container needs, e.g. cpu: 100m, memory: 64Mi. The scheduler only places "
                    "the pod on a node that still has this much unrequested.",
        "limits": "The most the container may use. The Docker driver enforces CPU and memory limits; memory "
                  "beyond the limit gets the container killed.",
    },
    "EnvVar": {
        "name": "The variable's name.",
        "value": "A literal value. $(NAME) is replaced by an earlier variable's value.",
        "valueFrom": "Read the value from a ConfigMap, a Secret, a field of the pod or a resource of the "
                     "container instead.",
    },
    "VolumeMount": {
        "name": "The name of one of the pod's volumes.",
        "mountPath": "Where the volume appears in the container: an absolute path.",
        "readOnly": "Mount it read-only (default false).",
        "subPath": "Mount only this path inside the volume instead of its root.",
    },
    "Volume": {
        "name": "The volume's name, unique in the pod; containers mount it by this name.",
        "emptyDir": "A directory that starts empty and lives as long as the pod (in memory with medium: Memory).",
    },
    "DeploymentSpec": {
        "replicas": "How many pods to run (default 1). kubectl scale changes it.",
        "selector": "Which pods belong to the Deployment. Must match the template's labels; cannot be changed "
                    "after creation.",
        "template": "The pods to run. Changing it starts a rollout to a new ReplicaSet.",
        "strategy": "How a rollout replaces pods: RollingUpdate (the default) or Recreate.",
        "minReadySeconds": "How long a new pod must stay ready before it counts as available (default 0).",
        "revisionHistoryLimit": "How many old ReplicaSets to keep for rollbacks (default 10).",
        "paused": "Stop rolling out template changes until unpaused.",
        "progressDeadlineSeconds": "Seconds without progress after which a rollout is reported as failed "
                                   "(default 600). The rollout itself goes on.",
    },
    "DeploymentStrategy": {
        "type": "RollingUpdate replaces pods a few at a time; Recreate stops all old pods before starting new ones.",
        "rollingUpdate": "Limits of a RollingUpdate: maxSurge and maxUnavailable.",
    },
    "RollingUpdateDeployment": {
        "maxSurge": "How many pods above replicas may exist during a rollout: a number or a percentage "
                    "(default 25%).",
        "maxUnavailable": "How many of the replicas may be unavailable during a rollout: a number or a percentage "
                          "(default 25%).",
    },
    "StatefulSetSpec": {
        "replicas": "How many numbered pods to run (default 1), named NAME-0 to NAME-(replicas-1).",
        "selector": "Which pods belong to the StatefulSet. Must match the template's labels.",
        "template": "The pods to run; each also gets its ordinal's name, hostname and claims.",
        "serviceName": "The headless Service that gives each pod its DNS name POD.SERVICE.NAMESPACE.svc.cluster.local.",
        "podManagementPolicy": "OrderedReady (the default) starts and stops pods one at a time in order; Parallel "
                               "does them all at once.",
        "updateStrategy": "How pods are replaced after a template change: RollingUpdate (the default) or OnDelete.",
        "volumeClaimTemplates": "Claims each pod gets its own copy of (NAME-POD), kept when the pod is replaced.",
        "minReadySeconds": "How long a new pod must stay ready before it counts as available (default 0).",
        "revisionHistoryLimit": "How many old revisions to keep (default 10).",
        "persistentVolumeClaimRetentionPolicy": "Whether the claims are deleted when the StatefulSet is deleted or "
                                                "scaled down (kept by default).",
    },
    "StatefulSetUpdateStrategy": {
        "type": "RollingUpdate replaces pods from the highest ordinal down; OnDelete only when you delete a pod.",
        "rollingUpdate": "A partition: only pods with an ordinal at or above it are updated.",
    },
    "JobSpec": {
        "completions": "How many pods must succeed for the Job to be complete (default 1).",
        "parallelism": "How many pods may run at once (default 1).",
        "backoffLimit": "How many failed pods are tolerated before the Job fails (default 6).",
        "activeDeadlineSeconds": "The most seconds the Job may run; then its pods are stopped and it fails.",
        "ttlSecondsAfterFinished": "Delete the Job this many seconds after it finishes.",
        "completionMode": "NonIndexed (the default) or Indexed, where each pod gets an index 0..completions-1.",
        "suspend": "While true, no pods are started and running ones are stopped.",
        "selector": "Which pods belong to the Job; generated unless manualSelector is true.",
        "manualSelector": "Use the given selector instead of a generated one.",
        "template": "The pods to run. Their restartPolicy must be Never or OnFailure.",
    },
    "CronJobSpec": {
        "schedule": "When to create a Job, in cron syntax: minute hour day-of-month month day-of-week, or "
                    "@hourly, @daily and the like.",
        "timeZone": "The time zone the schedule is read in, e.g. Europe/Paris; UTC when empty.",
        "concurrencyPolicy": "When a run is due while the last one still runs: Allow (the default), Forbid (skip "
                             "it) or Replace (stop the old one).",
        "startingDeadlineSeconds": "How late a missed run may still start; older ones are skipped.",
        "suspend": "While true, no new Jobs are created.",
        "successfulJobsHistoryLimit": "How many finished successful Jobs to keep (default 3).",
        "failedJobsHistoryLimit": "How many failed Jobs to keep (default 1).",
        "jobTemplate": "The Job to create at each run.",
    },
    "ServiceSpec": {
        "selector": "Labels of the pods that serve this Service; their ready ones are its endpoints. Without a "
                    "selector the Service has no endpoints.",
        "ports": "The ports the Service offers. More than one must each have a name.",
        "type": "ClusterIP (the default): an address inside the mesh. NodePort and LoadBalancer: also on the "
                "agent's external addresses. ExternalName: only a DNS alias (CNAME) for externalName.",
        "clusterIP": "The Service's address, given by the server from the Service range unless you ask for one. "
                     "\"None\" makes the Service headless: DNS answers the pods' own addresses. Cannot be changed; "
                     "none for ExternalName.",
        "clusterIPs": "The Service's addresses; meshd has one, the same as clusterIP.",
        "externalName": "For type ExternalName: the DNS name the Service's name is an alias (CNAME) for, e.g. "
                        "db.example.com. No address, proxying or endpoints are involved.",
        "externalIPs": "Not supported by meshd: it listens on the agent's --external addresses instead.",
        "publishNotReadyAddresses": "Not supported by meshd: only ready endpoints are published.",
        "externalTrafficPolicy": "Cluster or Local; on meshd both reach the same endpoints.",
        "allocateLoadBalancerNodePorts": "For type LoadBalancer: whether nodePorts are allocated too (default "
                                         "true).",
        "loadBalancerSourceRanges": "Not supported by meshd, which does not filter clients by address.",
        "loadBalancerIP": "Not supported by meshd: a LoadBalancer Service gets every external address of the "
                          "agent.",
    },
    "ServicePort": {
        "name": "The port's name (a DNS label); required when the Service has more than one port. It also names "
                "the port's SRV record: _NAME._PROTOCOL.SERVICE.NAMESPACE.svc.cluster.local.",
        "port": "The port number clients connect to on the Service's address.",
        "targetPort": "The pod port traffic goes to: a number or the name of a container port. Defaults to port.",
        "protocol": "TCP (the default) or UDP.",
        "nodePort": "For NodePort and LoadBalancer Services: the port on the external addresses (30000-32767); "
                    "allocated when not given.",
        "appProtocol": "The application protocol (e.g. http, h2c, grpc), which tells meshd's sidecar how to "
                       "handle the traffic.",
    },
    "ConfigMap": {
        "data": "The configuration: keys and UTF-8 string values. Each key becomes a file when mounted.",
        "binaryData": "Keys with binary values, base64-encoded. Keys may not repeat those of data.",
        "immutable": "When true, data cannot change again (only deleting and recreating does).",
    },
    "Secret": {
        "data": "The secret values, base64-encoded. Each key becomes a file when mounted.",
        "stringData": "Values given as plain strings, merged into data on write. Never shown on read.",
        "type": "What the secret holds, e.g. Opaque (the default), kubernetes.io/tls or "
                "kubernetes.io/dockerconfigjson (registry credentials for imagePullSecrets).",
        "immutable": "When true, data cannot change again (only deleting and recreating does).",
    },
    "LabelSelector": {
        "matchLabels": "Labels that must all be present with exactly these values.",
        "matchExpressions": "Rules on labels (In, NotIn, Exists, DoesNotExist) that must all hold.",
    },
}

__all__ = ["FIELDS", "OBJECT_FIELDS", "TYPES"]
