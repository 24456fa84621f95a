"""The audit plumbing counts exactly the writes a known identity made, Lease writes apart."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from tests.support.audit import AuditWindow, audit_log_path, flush
from tests.support.cluster import TEST_CLUSTER, Cluster
from tests.support.service_account import service_account_login
from tests.support.wait import wait_until


def _grant(api: client.ApiClient, namespace: str, user_sa: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="writer"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "create", "patch"]
                ),
                client.V1PolicyRule(
                    api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["create"]
                ),
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="writer"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="writer"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=user_sa, namespace=namespace)
            ],
        ),
    )


def _allowed(api: client.ApiClient, user: str, namespace: str, verb: str, resource: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=["system:serviceaccounts", "system:authenticated"],
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, resource=resource
                ),
            )
        )
    )
    return bool(review.status.allowed)


def test_known_writes_by_a_known_user_are_counted_and_nothing_else(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    log = audit_log_path(TEST_CLUSTER)
    login = service_account_login(
        cluster, kube_api, namespace=namespace, name="writer", directory=tmp_path
    )
    _grant(kube_api, namespace, "writer")
    # The authorizer sees new RBAC through an informer: wait until it does, before the
    # window opens (a refused retry inside it would count).
    wait_until(
        lambda: _allowed(kube_api, login.user, namespace, "patch", "configmaps"),
        timeout=30,
        what="the writer's Role to take effect",
    )
    window = AuditWindow.starting_now(log, user=login.user)
    admin_window = AuditWindow.starting_now(log, user="kwok-admin")
    core_as_writer = client.CoreV1Api(login.api_client())
    leases_as_writer = client.CoordinationV1Api(login.api_client())

    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="known"), data={"a": "1"})
    core_as_writer.create_namespaced_config_map(namespace, body)
    core_as_writer.patch_namespaced_config_map("known", namespace, {"data": {"a": "2"}})
    core_as_writer.read_namespaced_config_map("known", namespace)  # a read: not counted
    leases_as_writer.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="known"),
            spec=client.V1LeaseSpec(holder_identity="writer"),
        ),
    )
    # A forbidden write is a write attempt all the same, and is counted.
    refused = None
    try:
        core_as_writer.delete_namespaced_config_map("known", namespace)
    except client.ApiException as exc:
        refused = exc.status
    assert refused == 403
    # The admin writes too, in the same window: not this user's.
    client.CoreV1Api(kube_api).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="admins"))
    )
    window.close()
    flush(log, kube_api)

    counts = window.writes()
    assert dict(counts.by_request) == {
        ("create", "configmaps"): 1,
        ("patch", "configmaps"): 1,
        ("delete", "configmaps"): 1,
    }
    assert counts.lease_writes == 1
    events = window.events()
    assert {(e.verb, e.name, e.code) for e in events} == {
        ("create", "known", 201),
        ("patch", "known", 200),
        ("create", "known", 201),  # the Lease
        ("delete", "known", 403),
    }
    assert all(e.namespace == namespace for e in events)
    # The admin's own write is in the log under the admin's name, in its own window.
    admin_window.close()
    assert any(e.verb == "create" and e.name == "admins" for e in admin_window.events()), (
        "the admin's write is missing: is the policy logging every user's writes?"
    )
