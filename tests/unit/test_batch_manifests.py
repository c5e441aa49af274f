"""batch/v1 Job and CronJob and v1 Namespace manifests: defaults, and bad input refused with the field path;
which namespaces a write needs; the protobuf body of `kubectl create namespace`."""

from __future__ import annotations

import pytest

from meshd.api.protobuf import decode as decode_object
from meshd.controller.namespaces import NamespaceTerminating, Namespaces, missing_namespaces
from meshd.manifests import ManifestError, load_documents
from meshd.model.objects import CronJob, Job, Namespace

TEMPLATE = """\
  template:
    spec:
      restartPolicy: RESTART
      containers: [{name: c, image: busybox}]
"""


def job_text(spec: str = "", restart: str = "Never") -> str:
    return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" + spec + TEMPLATE.replace(
        "RESTART", restart)


def cron_text(spec: str = "  schedule: '*/5 * * * *'\n") -> str:
    template = "".join("    " + line + "\n" for line in ("spec:", *TEMPLATE.replace("RESTART", "OnFailure")
                                                         .splitlines()))
    return "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n" + spec + "  jobTemplate:\n" + \
        template


def test_job_defaults_as_kubernetes():
    (job,) = load_documents(job_text()).objects
    assert isinstance(job, Job)
    assert (job.completions, job.parallelism, job.backoff_limit, job.completion_mode, job.suspend) == (
        None, 1, 6, "NonIndexed", False)


def test_cronjob_defaults_as_kubernetes():
    (cron,) = load_documents(cron_text()).objects
    assert isinstance(cron, CronJob)
    assert (cron.concurrency_policy, cron.successful_jobs_history_limit, cron.failed_jobs_history_limit,
            cron.suspend, cron.time_zone) == ("Allow", 3, 1, False, None)


@pytest.mark.parametrize(("text", "path"), [
    (job_text(restart="Always"), "spec.template.spec.restartPolicy"),
    (job_text().replace("      restartPolicy: Never\n", ""), "spec.template.spec.restartPolicy"),
    (job_text("  completions: -1\n"), "spec.completions"),
    (job_text("  parallelism: -2\n"), "spec.parallelism"),
    (job_text("  backoffLimit: -1\n"), "spec.backoffLimit"),
    (job_text("  activeDeadlineSeconds: 0\n"), "spec.activeDeadlineSeconds"),
    (job_text("  ttlSecondsAfterFinished: -5\n"), "spec.ttlSecondsAfterFinished"),
    (job_text("  completionMode: Indexed\n"), "spec.completions"),
    (job_text("  completionMode: Sometimes\n"), "spec.completionMode"),
    (job_text("  podFailurePolicy: {rules: []}\n"), "spec.podFailurePolicy"),
    (job_text("  manualSelector: true\n"), "spec.manualSelector"),
    (cron_text("  schedule: '*/5 * * *'\n"), "spec.schedule"),
    (cron_text("  schedule: 'every minute'\n"), "spec.schedule"),
    (cron_text("  schedule: '* * * * *'\n  timeZone: Mars/Olympus\n"), "spec.timeZone"),
    (cron_text("  schedule: '* * * * *'\n  concurrencyPolicy: Sometimes\n"), "spec.concurrencyPolicy"),
    (cron_text("  schedule: '* * * * *'\n  startingDeadlineSeconds: -1\n"), "spec.startingDeadlineSeconds"),
    (cron_text("  schedule: '* * * * *'\n  successfulJobsHistoryLimit: -1\n"), "spec.successfulJobsHistoryLimit"),
    (cron_text().replace("OnFailure", "Always"), "spec.jobTemplate.spec.template.spec.restartPolicy"),
    (cron_text().replace("apiVersion: batch/v1", "apiVersion: batch/v1beta1"), "apiVersion"),
])
def test_bad_batch_manifests_name_the_field(text, path):
    with pytest.raises(ManifestError) as caught:
        load_documents(text)
    assert caught.value.field_path == path, str(caught.value)


def test_a_v1beta1_cronjob_is_told_the_version_to_use():
    with pytest.raises(ManifestError, match="use apiVersion: batch/v1"):
        load_documents(cron_text().replace("batch/v1", "batch/v1beta1"))


def test_a_namespace_is_cluster_scoped():
    (ns,) = load_documents("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: x}\n").objects
    assert isinstance(ns, Namespace) and ns.metadata.namespace == ""
    with pytest.raises(ManifestError):
        load_documents("apiVersion: v1\nkind: Namespace\nmetadata: {name: Shop}\n")


def test_which_namespaces_a_write_needs():
    objects = load_documents(job_text().replace("name: j}", "name: j, namespace: shop}") + "---\n"
                             + job_text().replace("name: j}", "name: k, namespace: shop}") + "---\n"
                             + job_text()).objects
    assert missing_namespaces(objects, exists=lambda n: n == "default", terminating=()) == ["shop"]
    defined = load_documents("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n").objects + objects
    assert missing_namespaces(defined, exists=lambda n: n == "default", terminating=()) == []
    with pytest.raises(NamespaceTerminating, match="because it is being terminated"):
        missing_namespaces(objects, exists=lambda n: True, terminating=("shop",))


def test_deleting_a_namespace_holds_it_until_its_content_is_gone():
    namespaces = Namespaces()
    content = {"shop": [("Job", "shop", "j")]}
    held = namespaces.on_delete([("Namespace", "", "shop")], contents=lambda n: content.get(n, []), now=1)
    assert held == {("Namespace", "", "shop")} and namespaces.terminating == {"shop": 1}
    assert namespaces.due(1.5) == ([], 2.0)  # its content goes a moment later, as the namespace controller's
    assert namespaces.due(2.0) == (["shop"], None)
    content.clear()
    assert namespaces.on_delete([("Namespace", "", "shop")], contents=lambda n: [], now=3) == set()  # empty: goes
    with pytest.raises(PermissionError, match="may not be deleted"):
        namespaces.on_delete([("Namespace", "", "default")], contents=lambda n: [], now=3)


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_the_protobuf_namespace_kubectl_create_sends():
    meta = _field(1, b"shop") + _field(11, _field(1, b"team") + _field(2, b"a"))
    type_meta = _field(1, b"v1") + _field(2, b"Namespace")
    body = b"k8s\x00" + _field(1, type_meta) + _field(2, _field(1, meta) + _field(2, b"")) + _field(4, b"")
    assert decode_object(body) == {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": "shop", "labels": {"team": "a"}}}
    with pytest.raises(ValueError):
        decode_object(b"{}")


def test_a_job_as_get_shows_it_is_the_job_applied():
    """PUT and PATCH send a Job back with the labels and selector meshd added: it is the same Job (its template
    is immutable, so anything else would be refused)."""
    (applied,) = load_documents(job_text()).objects
    shown = job_text("  selector: {matchLabels: {batch.kubernetes.io/controller-uid: u1}}\n").replace(
        "  template:\n", "  template:\n    metadata: {labels: {controller-uid: u1, job-name: j}}\n")
    (again,) = load_documents(shown).objects
    assert isinstance(again, Job) and again.template == applied.template  # type: ignore[union-attr]
