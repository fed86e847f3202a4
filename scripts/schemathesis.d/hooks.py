"""The narrow exceptions of the schemathesis run (scripts/schemathesis), each a rule JSON Schema
cannot state. A "valid data rejected" failure is dropped only when the server's 422/400 names
exactly that rule; every other check, and every other rejection, still fails the run.

- One field against another: `finished_at`/`ended_at`/`decided_at` before `started_at`, `since`
  after `until`, the same config change (or a change's same key, or a canary analysis' same
  metric) listed twice, a service depending on itself, a release summary's ratio with more events
  than trials or histogram buckets out of order, a rollback restoring the deployment it undid, a
  structured
  CloudEvent's `id`/`source`/`type` other than its CDEvent's `context.id`/`.source`/`.type`. The document
  declares each field's own contract; the relation is in its description.
- The canary hooks (`GET /v1/canary/judge`, `POST /v1/canary/flagger`): a baseline selector
  that selects what the canary selector does, a deployment of another service than the one
  named, a Flagger setting given both in the query string and in the webhook's metadata, or
  in neither when it is required (`template`).
- Opaque values only the server issues: a `cursor` is `next_cursor` from a previous page. A
  random string of the declared type cannot be one.
- Another language inside a string: `POST /v1/cypher` takes a Cypher query; a schema-valid
  string is not a valid query, and Neo4j refuses it (400 `query_refused`). `GET /v1/ask` takes
  a question in English or Chinese; a random string is rarely one, and the server says it
  cannot map it (422 `not_understood`, field `q`, with the forms it understands).
- The gate configuration inside `POST /v1/snapshots` is the gate YAML file's schema (documented
  in docs/, validated by the probe's parser with field-named errors); the document declares it
  as an object. Its checks never leave the server's network namespace.
- The records inside `POST /v1/agent/records` are the model's deployments and changes as an
  agent's watchers build them (uids, workload, diffs; checked by the model's deserializer with
  errors naming the field), each record exactly one of them and of the batch's cluster; the
  document declares each as an object.
- The catalog files inside `POST /v1/topology/backstage` are Backstage entity YAML (the
  descriptor format, read by the model's parser with errors naming the file and entity); the
  document declares each file's `content` as a string. A random string is rarely an entity.
"""

import json
import os
import re

import schemathesis

# (field, words in the message) of the cross-field rules.
RELATIONS = [
    ("finished_at", "is before started_at"),
    ("ended_at", "is before started_at"),
    ("decided_at", "is before started_at"),
    ("since", "is after until"),
    ("changes[", "is listed twice"),
    ("diff[", "is listed twice"),
    ("metrics[", "is listed twice"),
    ("depends_on[", "cannot depend on itself"),
    # A release summary's metric data as the judge reads it (POST /v1/deployments/{uid}/summaries).
    ("metrics.", "is above its denominator"),
    ("metrics.", "bucket bounds are not increasing"),
    # A rollback restores another deployment than the one it undid (POST /v1/rollbacks).
    ("restored", "is the deployment undone"),
    # A CloudEvent's attributes are its CDEvent's context (structured mode, POST /v1/events).
    ("id", "differs from the CDEvent's context.id"),
    ("source", "differs from the CDEvent's context.source"),
    ("type", "differs from the CDEvent's context.type"),
    # The canary hooks.
    ("baseline_selector", "selects the same series as the canary selector"),
    ("metadata.baseline_selector", "selects the same series as the canary selector"),
    ("deployment", "rolled out service"),
    ("metadata.deployment", "rolled out service"),
    ("metadata.", "is given both in the query string and in the webhook's metadata"),
    ("template", "name the analysis template in the query string"),
]


def _error(response):
    try:
        return json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return None


def _dropped(failure, case, response, reason):
    """Records a dropped failure for the run's summary (SCHEMATHESIS_DROPPED_LOG)."""
    path = os.environ.get("SCHEMATHESIS_DROPPED_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "reason": reason,
                "failure": type(failure).__name__,
                "operation": f"{case.operation.method.upper()} {case.operation.path}",
                "status": response.status_code,
            }) + "\n")
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but the rejections of rules a schema cannot state."""
    keep = _keep(failure, case, response)
    if keep is True:
        return True
    return _dropped(failure, case, response, keep)


def _keep(failure, case, response):
    """True to keep the failure, else the reason it is not the API's fault."""
    name = type(failure).__name__
    path = case.operation.path
    method = case.operation.method.upper()
    # Stateful inference links POST /v1/deployments to GET /v1/deployments/{uid}/snapshot by
    # the uid; that sub-resource exists only once a snapshot was taken for the deployment,
    # and its 404 says so.
    if name == "EnsureResourceAvailability" and response.status_code == 404:
        error = _error(response)
        if error and "no snapshot was taken" in (error.get("message") or ""):
            return "snapshot of a deployment is taken separately"
    if name != "RejectedPositiveData":
        return True
    error = _error(response)
    if error is None:
        return True
    field = error.get("field") or ""
    message = error.get("message") or ""
    # An item of a batch (`POST /v1/changes` with an array) is named by its index first.
    item_field = re.sub(r"^\[\d+\]\.", "", field)
    if response.status_code == 422:
        for prefix, words in RELATIONS:
            if item_field.startswith(prefix) and words in message:
                return f"relation: {prefix} {words}"
        if field == "cursor" and error.get("code") == "invalid_field":
            return "cursor not issued by the server"
        if (method, path) == ("POST", "/v1/snapshots") and field.startswith("config"):
            return "gate configuration grammar"
        if (
            (method, path) == ("POST", "/v1/topology/backstage")
            and field.startswith("files[")
            and not field.endswith(".path")
        ):
            return "Backstage descriptor grammar"
    if (
        (method, path) == ("POST", "/v1/agent/records")
        and response.status_code == 422
        and re.match(r"^records\[\d+\](\.(deployment|change)\b.*)?$", field)
    ):
        return "agent record model"
    if (
        (method, path) == ("GET", "/v1/ask")
        and response.status_code == 422
        and error.get("code") == "not_understood"
        and field == "q"
    ):
        return "question grammar"
    if (method, path) == ("POST", "/v1/cypher") and response.status_code == 400:
        if error.get("code") == "query_refused":
            return "Cypher grammar"
    return True
