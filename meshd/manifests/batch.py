"""batch/v1 Job and CronJob specs, and v1 Namespace, with Kubernetes' validation and field paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, cast

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.meta import read_template_meta
from meshd.manifests.pods import read_pod_spec
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.cron import CronError, known_zones, parse_schedule
from meshd.model.objects import CronJob, Job, KubeObject, Namespace, ObjectMeta, PodTemplate

_SPEC: FieldPath = ("spec",)
JOB_UNSUPPORTED = ("podFailurePolicy", "successPolicy", "backoffLimitPerIndex", "maxFailedIndexes",
                   "podReplacementPolicy", "managedBy")
MAX_INDEXED_COMPLETIONS = 100_000
GENERATED_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid",
                    "job-name")  # what the Job controller labels its pods with  # Kubernetes' limit for Indexed Jobs


def read_job(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Job:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    return read_job_spec(reader, spec, _SPEC, metadata=metadata, raw=doc)


def read_job_spec(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath, *, metadata: ObjectMeta,
                  raw: Mapping[str, Any]) -> Job:
    """A Job's spec at `path` (spec, or a CronJob's spec.jobTemplate.spec)."""
    reader.check_fields(
        spec, path,
        known=("completions", "parallelism", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
               "completionMode", "suspend", "template", "selector", "manualSelector"),
        unsupported=JOB_UNSUPPORTED)
    if reader.boolean(spec, "manualSelector", path):
        raise reader.fail(path + ("manualSelector",), "not supported (meshd selects a Job's pods by its uid)")
    if reader.get(spec, "selector", path) is not MISSING:  # as `get job -o yaml` shows it: the generated one
        reader.mapping(spec["selector"], path + ("selector",))
    completions = reader.integer(spec, "completions", path, minimum=0)
    parallelism = reader.integer(spec, "parallelism", path, default=1, minimum=0)
    backoff_limit = reader.integer(spec, "backoffLimit", path, default=6, minimum=0)
    deadline = reader.integer(spec, "activeDeadlineSeconds", path, minimum=1)
    ttl = reader.integer(spec, "ttlSecondsAfterFinished", path, minimum=0)
    mode = reader.choice(spec, "completionMode", path, ("NonIndexed", "Indexed"), default="NonIndexed")
    if mode == "Indexed":
        if completions is None:
            raise reader.fail(path + ("completions",), "Required value: when completion mode is Indexed")
        if completions > MAX_INDEXED_COMPLETIONS:
            raise reader.fail(path + ("completions",),
                              f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode "
                              f"is Indexed")
    template = _read_job_template(reader, spec, path, namespace=metadata.namespace)
    assert parallelism is not None and backoff_limit is not None
    return Job(
        metadata=metadata,
        template=template,
        completions=completions if spec.get("completions") is not None or mode == "Indexed" else None,
        parallelism=parallelism,
        backoff_limit=backoff_limit,
        active_deadline_seconds=deadline,
        ttl_seconds_after_finished=ttl,
        completion_mode=cast(Any, mode),
        suspend=reader.boolean(spec, "suspend", path),
        raw=raw,
    )


def _read_job_template(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath, *,
                       namespace: str) -> PodTemplate:
    """A Job's pod template: restartPolicy OnFailure or Never (a Job's pods end; Always is refused)."""
    template_path = path + ("template",)
    template = reader.mapping(reader.get(spec, "template", path, required=True), template_path)
    reader.check_fields(template, template_path, known=("metadata", "spec"))
    metadata = read_template_meta(reader, template, template_path, namespace=namespace)
    if any(k in GENERATED_LABELS for k in metadata.labels):  # as GET shows a Job (a PUT or PATCH of it sends them back): meshd sets them itself
        labels = {k: v for k, v in metadata.labels.items() if k not in GENERATED_LABELS}
        metadata = dataclasses.replace(metadata, labels=labels)
    pod_spec = read_pod_spec(reader, reader.get(template, "spec", template_path, required=True),
                             template_path + ("spec",), restart_policies=("OnFailure", "Never"))
    return PodTemplate(metadata=metadata, spec=pod_spec)


def read_cronjob(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> CronJob:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(
        spec, _SPEC,
        known=("schedule", "timeZone", "concurrencyPolicy", "startingDeadlineSeconds", "suspend",
               "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "jobTemplate"))
    schedule = reader.string(spec, "schedule", _SPEC, required=True, allow_empty=False)
    assert schedule is not None
    try:
        parse_schedule(schedule)
    except CronError as error:
        raise reader.fail(_SPEC + ("schedule",), f'Invalid value: "{schedule}": {error}') from None
    time_zone = reader.string(spec, "timeZone", _SPEC)
    if time_zone is not None:
        if time_zone not in known_zones():
            raise reader.fail(_SPEC + ("timeZone",), f'Invalid value: "{time_zone}": unknown time zone')
    policy = reader.choice(spec, "concurrencyPolicy", _SPEC, ("Allow", "Forbid", "Replace"), default="Allow")
    deadline = reader.integer(spec, "startingDeadlineSeconds", _SPEC, minimum=0)
    successful = reader.integer(spec, "successfulJobsHistoryLimit", _SPEC, default=3, minimum=0)
    failed = reader.integer(spec, "failedJobsHistoryLimit", _SPEC, default=1, minimum=0)
    template_path = _SPEC + ("jobTemplate",)
    template = reader.mapping(reader.get(spec, "jobTemplate", _SPEC, required=True), template_path)
    reader.check_fields(template, template_path, known=("metadata", "spec"))
    job_meta = read_template_meta(reader, template, template_path, namespace=metadata.namespace)
    job_spec = reader.mapping(reader.get(template, "spec", template_path, required=True), template_path + ("spec",))
    read_job_spec(reader, job_spec, template_path + ("spec",),
                  metadata=dataclasses.replace(job_meta, name=metadata.name), raw={})
    assert successful is not None and failed is not None
    return CronJob(
        metadata=metadata,
        schedule=schedule,
        job_template=template,
        time_zone=time_zone,
        concurrency_policy=cast(Any, policy),
        starting_deadline_seconds=deadline,
        suspend=reader.boolean(spec, "suspend", _SPEC),
        successful_jobs_history_limit=successful,
        failed_jobs_history_limit=failed,
        raw=doc,
    )


def read_namespace(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Namespace:
    """A Namespace is cluster-scoped: a metadata.namespace is ignored, as the API server ignores it."""
    value = reader.get(doc, "spec", ())
    if value is not MISSING:
        spec = reader.mapping(value, _SPEC)
        reader.check_fields(spec, _SPEC, known=(), ignored={"finalizers": "ignored (meshd finalizes itself)"})
    return Namespace(metadata=dataclasses.replace(metadata, namespace=""), raw=doc)


def cronjob_name(name: str) -> str | None:
    """A CronJob's name: a DNS subdomain of 52 characters at most (its Jobs add 11)."""
    problem = names.dns1123_subdomain(name)
    if problem is None and len(name) > 52:
        return "must be no more than 52 characters"
    return problem


READERS: dict[str, Callable[[DocumentReader, Mapping[str, Any], ObjectMeta], KubeObject]] = {
    "Job": read_job, "CronJob": read_cronjob, "Namespace": read_namespace}

__all__ = ["READERS", "cronjob_name", "read_cronjob", "read_job", "read_job_spec", "read_namespace"]
