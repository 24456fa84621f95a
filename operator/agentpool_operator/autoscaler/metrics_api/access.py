"""May this caller read this metric? Asked of the API server (a SubjectAccessReview), as
every extension server does (k8s.io/apiserver's delegating authorizer), with its answers
kept briefly so that an HPA reading every few seconds costs one review per window.

The attributes are those the aggregator's own RBAC rules speak of: group
custom.metrics.k8s.io, resource `agentpools.agentpool.dev`, subresource the metric (the
HPA controller's ClusterRole grants `custom.metrics.k8s.io` `*` get/list).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from kubernetes import client

from agentpool_operator.autoscaler.metrics_api.documents import GROUP, POOL_RESOURCE
from agentpool_operator.autoscaler.metrics_api.front_proxy import Caller

ALLOWED_TTL = 10.0
DENIED_TTL = 10.0
"""k8s.io/apiserver's defaults for a delegated authorizer's cache."""


@dataclass(frozen=True)
class Question:
    caller: Caller
    verb: str
    namespace: str
    name: str
    metric: str


def review_body(question: Question) -> dict[str, object]:
    """The SubjectAccessReview for `question`."""
    caller = question.caller
    attributes: dict[str, str] = {
        "verb": question.verb,
        "group": GROUP,
        "resource": POOL_RESOURCE,
        "subresource": question.metric,
        "namespace": question.namespace,
    }
    if question.name != "*":
        attributes["name"] = question.name
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": caller.user,
            "groups": list(caller.groups),
            "extra": {k: list(v) for k, v in caller.extra.items()},
            "resourceAttributes": attributes,
        },
    }


def _key(question: Question) -> tuple[object, ...]:
    caller = question.caller
    extra = tuple(sorted((k, v) for k, v in caller.extra.items()))
    return (caller.user, caller.groups, extra, question.verb, question.namespace,
            question.name, question.metric)  # fmt: skip


class AccessReviewer(Protocol):
    async def allowed(self, question: Question) -> tuple[bool, str]: ...


class Authorizer:
    """SubjectAccessReviews with a small cache of their answers."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The generic client takes and returns plain dicts, like every other body here.
        self._api = client.CustomObjectsApi(api_client)
        self._clock = clock
        self._answers: dict[tuple[object, ...], tuple[float, bool, str]] = {}

    async def allowed(self, question: Question) -> tuple[bool, str]:
        """(allowed, the API server's reason)."""
        key = _key(question)
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        review = await asyncio.to_thread(
            self._api.create_cluster_custom_object,
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            review_body(question),
        )
        answer = cast(dict[str, Any], review).get("status") or {}
        allowed = bool(answer.get("allowed")) and not bool(answer.get("denied"))
        reason = str(answer.get("reason") or "")
        if len(self._answers) > 10_000:  # many callers: start again rather than grow
            self._answers.clear()
        self._answers[key] = (now + (ALLOWED_TTL if allowed else DENIED_TTL), allowed, reason)
        return allowed, reason
