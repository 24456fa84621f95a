"""What a pool may change in the agent pods the operator renders: the Kubernetes pod fields
users ask for, typed, so that a spec the API server accepts also makes a Deployment the
server accepts.

Every type here is a subset of its core/v1 namesake, with the same field names and the
validation the Deployment would apply; the operator's own volumes, mounts and labels
are protected by rules, not by documentation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from agentpool_operator.api.common import (
    ConfigMapKeyRef,
    LabelSelector,
    LocalObjectReference,
    SecretKeyRef,
)
from agentpool_operator.api.schema import (
    MAX_LIST,
    AbsolutePath,
    AnnotationValue,
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    EnvName,
    LabelValue,
    NameKeyed,
    QualifiedName,
    Quantity,
    Rule,
    list_map,
    quantity_value,
    unique_by,
)

RESERVED_PREFIX = "agentpool-"
"""Volumes whose names start with this are the operator's."""
RESERVED_PATHS = ("/etc/agentpool", "/run/agentpool", "/tmp")  # noqa: S108 - a mount point, not a temp file
"""Mount points the operator uses in the agent container."""
RESERVED_LABEL_PREFIXES = ("agentpool.dev/", "app.kubernetes.io/")
"""Pod label prefixes the operator owns (its selector and managed-by labels)."""

# ---------------------------------------------------------------------------- env


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeyRef | None = None
    """A key of a Secret. Defaults to none."""
    config_map_key_ref: ConfigMapKeyRef | None = None
    """A key of a ConfigMap. Defaults to none."""

    cel_rules = (
        Rule(
            cel="has(self.secretKeyRef) != has(self.configMapKeyRef)",
            message="exactly one of secretKeyRef or configMapKeyRef must be set",
            check=lambda s: (s.secret_key_ref is None) != (s.config_map_key_ref is None),
        ),
    )


class EnvVar(ApiModel):
    """An environment variable of the agent container."""

    name: EnvName
    """Variable name. Names starting with AGENTPOOL_ are the operator's."""
    value: Annotated[str, StringConstraints(max_length=32_768)] | None = None
    """Literal value. Defaults to the empty string when valueFrom is unset."""
    value_from: EnvVarSource | None = None
    """Value read from a Secret or ConfigMap key. Defaults to none."""

    cel_rules = (
        Rule(
            cel="!(has(self.value) && has(self.valueFrom))",
            message="value and valueFrom are mutually exclusive",
            field_path=".valueFrom",
            check=lambda s: s.value is None or s.value_from is None,
        ),
        Rule(
            cel="!self.name.startsWith('AGENTPOOL_')",
            message="names starting with AGENTPOOL_ are reserved for the operator",
            field_path=".name",
            check=lambda s: not s.name.startswith("AGENTPOOL_"),
        ),
    )


class EnvFromSource(ApiModel):
    """Every key of a ConfigMap or a Secret as environment variables."""

    config_map_ref: LocalObjectReference | None = None
    """The ConfigMap. Defaults to none."""
    secret_ref: LocalObjectReference | None = None
    """The Secret. Defaults to none."""
    prefix: EnvName | None = None
    """Prepended to every key. Defaults to no prefix."""

    cel_rules = (
        Rule(
            cel="has(self.configMapRef) != has(self.secretRef)",
            message="exactly one of configMapRef or secretRef must be set",
            check=lambda s: (s.config_map_ref is None) != (s.secret_ref is None),
        ),
    )


# ---------------------------------------------------------------------------- scheduling


class Toleration(ApiModel):
    """A toleration of the agent pods, as in core/v1 Toleration."""

    key: QualifiedName | None = None
    """Taint key. Defaults to none, which with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal matches key and value; Exists matches any value of the key."""
    value: LabelValue | None = None
    """Taint value, for operator Equal. Defaults to the empty value."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect matched. Defaults to every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears. Defaults to
    forever."""

    cel_rules = (
        Rule(
            cel="self.operator != 'Exists' || !has(self.value)",
            message="value must be empty when operator is Exists",
            field_path=".value",
            check=lambda s: s.operator != "Exists" or s.value is None,
        ),
        Rule(
            cel="has(self.key) || self.operator == 'Exists'",
            message="key is required unless operator is Exists",
            field_path=".key",
            check=lambda s: s.key is not None or s.operator == "Exists",
        ),
        Rule(
            cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            message="tolerationSeconds is only allowed with effect NoExecute",
            field_path=".tolerationSeconds",
            check=lambda s: s.toleration_seconds is None or s.effect == "NoExecute",
        ),
    )


class NodeSelectorRequirement(ApiModel):
    """A requirement on a node's labels (or, in matchFields, on its fields)."""

    key: QualifiedName
    """The label key (or field) the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    """How the value relates to values."""
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_LIST)
    """Non-empty for In and NotIn, one integer for Gt and Lt, empty otherwise. Defaults
    to none."""

    cel_rules = (
        Rule(
            cel="self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
            " : self.operator in ['Gt', 'Lt'] ? (has(self.values) && size(self.values) == 1"
            " && self.values[0].matches('^-?[0-9]+$'))"
            " : (!has(self.values) || size(self.values) == 0)",
            message="values must be non-empty for In and NotIn, one integer for Gt and Lt, "
            "and empty for Exists and DoesNotExist",
            field_path=".values",
            check=lambda s: (
                len(s.values) > 0
                if s.operator in ("In", "NotIn")
                else (len(s.values) == 1 and s.values[0].lstrip("-").isdigit())
                if s.operator in ("Gt", "Lt")
                else not s.values
            ),
        ),
    )


class NodeSelectorTerm(ApiModel):
    """Requirements on a node, ANDed."""

    match_expressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Requirements on the node's labels. Defaults to none."""


class NodeSelector(ApiModel):
    """Terms ORed: a node matching any of them qualifies."""

    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=MAX_LIST)
    """The terms."""


class PreferredSchedulingTerm(ApiModel):
    """A weighted preference for nodes."""

    weight: int = Field(ge=1, le=100)
    """Weight, 1 to 100, added to a node's score when the preference matches."""
    preference: NodeSelectorTerm
    """The preference."""


class NodeAffinity(ApiModel):
    """Which nodes the agent pods may, or prefer to, run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    """Nodes a pod must be scheduled on. Defaults to any node."""
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Nodes a pod prefers. Defaults to none."""


class PodAffinityTerm(ApiModel):
    """Pods (by label, in some namespaces) that a pod must or should run near, by topology."""

    label_selector: LabelSelector | None = None
    """The pods. Defaults to none, which matches no pod."""
    namespace_selector: LabelSelector | None = None
    """Namespaces of those pods, by label. Defaults to the pool's namespace."""
    namespaces: list[DnsLabel] = Field(default_factory=list, max_length=MAX_LIST)
    """Namespaces of those pods, by name. Defaults to the pool's namespace."""
    topology_key: QualifiedName
    """The node label whose value defines "near" (e.g. kubernetes.io/hostname)."""


class WeightedPodAffinityTerm(ApiModel):
    """A weighted pod affinity preference."""

    weight: int = Field(ge=1, le=100)
    """Weight, 1 to 100."""
    pod_affinity_term: PodAffinityTerm
    """The term."""


class PodAffinity(ApiModel):
    """Pod (anti-)affinity rules, required or preferred."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Terms that must hold. Defaults to none."""
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    """Terms that should hold. Defaults to none."""


class Affinity(ApiModel):
    """Scheduling constraints of the agent pods, as in core/v1 Affinity."""

    node_affinity: NodeAffinity | None = None
    """Node affinity. Defaults to none."""
    pod_affinity: PodAffinity | None = None
    """Pod affinity. Defaults to none."""
    pod_anti_affinity: PodAffinity | None = None
    """Pod anti-affinity. Defaults to none."""


class TopologySpreadConstraint(ApiModel):
    """How the agent pods spread over a topology (zones, nodes)."""

    max_skew: int = Field(ge=1, le=1000)
    """Largest allowed difference in pod count between two domains."""
    topology_key: QualifiedName
    """The node label that defines a domain (e.g. topology.kubernetes.io/zone)."""
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = "DoNotSchedule"
    """Whether a pod that would break maxSkew waits (DoNotSchedule) or is placed anyway."""
    label_selector: LabelSelector | None = None
    """The pods counted. Defaults to the pool's own pods."""
    min_domains: int | None = Field(default=None, ge=1, le=1000)
    """Domains assumed to exist, for DoNotSchedule only. Defaults to the domains found."""

    cel_rules = (
        Rule(
            cel="!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
            message="minDomains is only allowed with whenUnsatisfiable DoNotSchedule",
            field_path=".minDomains",
            check=lambda s: s.min_domains is None or s.when_unsatisfiable == "DoNotSchedule",
        ),
    )


# ---------------------------------------------------------------------------- security


class SeccompProfile(ApiModel):
    """A seccomp profile."""

    type: Literal["RuntimeDefault", "Localhost"] = "RuntimeDefault"
    """RuntimeDefault (the container runtime's profile) or Localhost (a file on the node).
    Unconfined is not offered."""
    localhost_profile: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = (
        None
    )
    """The profile's path on the node, for Localhost. Defaults to none."""

    cel_rules = (
        Rule(
            cel="(self.type == 'Localhost') == has(self.localhostProfile)",
            message="localhostProfile is required for type Localhost and only allowed there",
            field_path=".localhostProfile",
            check=lambda s: (s.type == "Localhost") == (s.localhost_profile is not None),
        ),
    )


UserId = Annotated[int, Field(ge=0, le=2_147_483_647)]


class PodSecurityContext(ApiModel):
    """Pod-level security settings. The operator's defaults pass the restricted Pod
    Security Standard; what is set here replaces them field by field."""

    run_as_user: UserId | None = None
    """The uid the containers run as. Defaults to the image's user (65532)."""
    run_as_group: UserId | None = None
    """The primary gid. Defaults to the image's group."""
    run_as_non_root: bool | None = None
    """Refuse to start a container that would run as root. Defaults to true."""
    fs_group: UserId | None = None
    """A supplemental group owning the pod's volumes. Defaults to none."""
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = None
    """When volume ownership is changed to fsGroup. Defaults to Always."""
    supplemental_groups: list[UserId] = Field(default_factory=list, max_length=32)
    """Extra groups of the first process. Defaults to none."""
    seccomp_profile: SeccompProfile | None = None
    """The seccomp profile. Defaults to RuntimeDefault."""


class Capabilities(ApiModel):
    """Linux capabilities added to or dropped from the agent container."""

    add: list[Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Z_]{1,64}$")]] = Field(
        default_factory=list, max_length=32
    )
    """Capabilities added. Defaults to none (the restricted standard allows only
    NET_BIND_SERVICE)."""
    drop: list[Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Z_]{1,64}$")]] = Field(
        default_factory=list, max_length=64
    )
    """Capabilities dropped. Defaults to ALL."""


class ContainerSecurityContext(ApiModel):
    """Security settings of the agent container. The operator's defaults pass the
    restricted Pod Security Standard; what is set here replaces them field by field."""

    run_as_user: UserId | None = None
    """The uid. Defaults to the pod's."""
    run_as_group: UserId | None = None
    """The gid. Defaults to the pod's."""
    run_as_non_root: bool | None = None
    """Refuse to run as root. Defaults to true."""
    read_only_root_filesystem: bool | None = None
    """Mount the image read-only (a writable /tmp is provided). Defaults to true."""
    allow_privilege_escalation: bool | None = None
    """Let a process gain more privileges than its parent. Defaults to false."""
    capabilities: Capabilities | None = None
    """Capabilities. Defaults to dropping ALL."""
    seccomp_profile: SeccompProfile | None = None
    """The seccomp profile. Defaults to the pod's."""


# ---------------------------------------------------------------------------- volumes


class KeyToPath(ApiModel):
    """A key of a ConfigMap or Secret projected to a file."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """The key."""
    path: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^/][^\x00]*$")]
    """Relative path of the file; no .. element."""

    cel_rules = (
        Rule(
            cel="!self.path.matches('(^|/)[.][.](/|$)')",
            message="path must not contain a .. element",
            field_path=".path",
            check=lambda s: ".." not in s.path.split("/"),
        ),
    )


FileMode = Annotated[int, Field(ge=0, le=0o777)]


class ConfigMapVolumeSource(ApiModel):
    """A ConfigMap as files."""

    name: DnsSubdomain
    """The ConfigMap."""
    items: list[KeyToPath] = Field(default_factory=list, max_length=16)
    """Keys to project. Defaults to every key, each as a file of its name."""
    default_mode: FileMode | None = None
    """Mode bits of the files. Defaults to 0644."""
    optional: bool | None = None
    """Whether the pod starts when the ConfigMap is missing. Defaults to false."""


class SecretVolumeSource(ApiModel):
    """A Secret as files."""

    secret_name: DnsSubdomain
    """The Secret."""
    items: list[KeyToPath] = Field(default_factory=list, max_length=16)
    """Keys to project. Defaults to every key, each as a file of its name."""
    default_mode: FileMode | None = None
    """Mode bits of the files. Defaults to 0644."""
    optional: bool | None = None
    """Whether the pod starts when the Secret is missing. Defaults to false."""


class EmptyDirVolumeSource(ApiModel):
    """A scratch directory that lives as long as the pod."""

    medium: Literal["", "Memory"] = ""
    """Memory backs it with tmpfs; empty uses the node's disk."""
    size_limit: Quantity | None = None
    """Most it may hold. Defaults to no limit."""


class PersistentVolumeClaimVolumeSource(ApiModel):
    """A PersistentVolumeClaim of the same namespace."""

    claim_name: DnsSubdomain
    """The claim."""
    read_only: bool = False
    """Mount it read-only."""


class Volume(ApiModel):
    """A volume of the agent pods: exactly one source."""

    name: DnsLabel
    """Volume name, referred to by volumeMounts. Names starting with agentpool- are the
    operator's."""
    config_map: ConfigMapVolumeSource | None = None
    """A ConfigMap. Defaults to none."""
    secret: SecretVolumeSource | None = None
    """A Secret. Defaults to none."""
    empty_dir: EmptyDirVolumeSource | None = None
    """A scratch directory. Defaults to none."""
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    """A PersistentVolumeClaim. Defaults to none."""

    cel_rules = (
        Rule(
            cel="[has(self.configMap), has(self.secret), has(self.emptyDir), "
            "has(self.persistentVolumeClaim)].filter(x, x).size() == 1",
            message="exactly one of configMap, secret, emptyDir or persistentVolumeClaim "
            "must be set",
            check=lambda s: (
                sum(
                    x is not None
                    for x in (s.config_map, s.secret, s.empty_dir, s.persistent_volume_claim)
                )
                == 1
            ),
        ),
        Rule(
            cel=f"!self.name.startsWith('{RESERVED_PREFIX}')",
            message=f"volume names starting with {RESERVED_PREFIX} are reserved for the operator",
            field_path=".name",
            check=lambda s: not s.name.startswith(RESERVED_PREFIX),
        ),
    )


def _reserved_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in RESERVED_PATHS)


_RESERVED_PATHS_CEL = " || ".join(
    f"self.mountPath == '{p}' || self.mountPath.startsWith('{p}/')" for p in RESERVED_PATHS
)


class VolumeMount(ApiModel):
    """Where a volume appears in the agent container."""

    name: DnsLabel
    """The volume, by name (one of volumes)."""
    mount_path: AbsolutePath
    """Absolute path in the container. /etc/agentpool, /run/agentpool and /tmp are the
    operator's."""
    read_only: bool = False
    """Mount it read-only."""
    sub_path: (
        Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/][^\x00]*$")]
        | None
    ) = None
    """A path inside the volume to mount instead of its root. Defaults to the root."""

    cel_rules = (
        Rule(
            cel=f"!({_RESERVED_PATHS_CEL})",
            message="mountPath must not be /etc/agentpool, /run/agentpool, /tmp or under them",
            field_path=".mountPath",
            check=lambda s: not _reserved_path(s.mount_path),
        ),
        Rule(
            cel="!has(self.subPath) || !self.subPath.matches('(^|/)[.][.](/|$)')",
            message="subPath must not contain a .. element",
            field_path=".subPath",
            check=lambda s: s.sub_path is None or ".." not in s.sub_path.split("/"),
        ),
    )


# ---------------------------------------------------------------------------- resources


ResourceName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        # The standard resources, or an extended one (a name with a domain).
        pattern=r"^(cpu|memory|ephemeral-storage|"
        r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$",
    ),
]


class ResourceRequirements(ApiModel):
    """Compute resources of the agent container, as in core/v1 ResourceRequirements."""

    requests: dict[ResourceName, Quantity] = Field(default_factory=dict, max_length=4)
    """Resources reserved for the container, e.g. cpu 250m and memory 512Mi. Defaults to
    cpu 100m and memory 256Mi."""
    limits: dict[ResourceName, Quantity] = Field(default_factory=dict, max_length=4)
    """Most the container may use. Defaults to memory 1Gi."""

    cel_rules = (
        Rule(
            cel="!has(self.requests) || !has(self.limits) || self.requests.all(k, "
            "!(k in self.limits) || "
            "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",
            message="each request must not exceed the limit of the same resource",
            field_path=".requests",
            check=lambda s: all(
                quantity_value(v) <= quantity_value(s.limits[k])
                for k, v in s.requests.items()
                if k in s.limits
            ),
        ),
        Rule(
            cel="!has(self.requests) || !has(self.limits) || self.requests.all(k, "
            "!k.contains('/') || !(k in self.limits) || "
            "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) == 0)",
            message="an extended resource (a name with a domain) cannot be overcommitted: its "
            "request must equal its limit",
            field_path=".requests",
            check=lambda s: all(
                quantity_value(v) == quantity_value(s.limits[k])
                for k, v in s.requests.items()
                if "/" in k and k in s.limits
            ),
        ),
    )


class ServiceAccountSpec(ApiModel):
    """The ServiceAccount the operator makes for the pool's pods."""

    annotations: dict[QualifiedName, AnnotationValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Annotations of the ServiceAccount, e.g. eks.amazonaws.com/role-arn for IRSA or
    iam.gke.io/gcp-service-account for Workload Identity. Defaults to none."""


# ---------------------------------------------------------------------------- the template


def _one_constraint_per_key_and_action(
    items: list[TopologySpreadConstraint],
) -> list[TopologySpreadConstraint]:
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = (item.topology_key, item.when_unsatisfiable)
        if key in seen:
            raise ValueError(f"duplicate topologySpreadConstraint for {key[0]!r} and {key[1]!r}")
        seen.add(key)
    return items


class PodTemplate(ApiModel):
    """Changes to the agent pods the operator renders; everything unset keeps the
    operator's choice, which passes the restricted Pod Security Standard."""

    image: (
        Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^\S+$")] | None
    ) = None
    """Agent runtime image. Defaults to the image the operator was installed with."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy of the agent container. Defaults to IfNotPresent."""
    image_pull_secrets: NameKeyed[LocalObjectReference] = list_map("name", max_items=16)
    """Secrets used to pull the image. Defaults to none."""
    labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=MAX_LIST)
    """Labels added to the agent pods. Keys under agentpool.dev/ and app.kubernetes.io/
    are the operator's. Defaults to none."""
    annotations: dict[QualifiedName, AnnotationValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Annotations added to the agent pods. Defaults to none."""
    resources: ResourceRequirements | None = None
    """Compute resources of the agent container, merged key by key over the defaults (a
    default limit below the request is raised to it, a default request above the limit
    lowered to it). Defaults to requests of cpu 100m,
    memory 256Mi and ephemeral-storage 64Mi, and limits of cpu 2, memory 1Gi and
    ephemeral-storage 1Gi."""
    env: NameKeyed[EnvVar] = list_map("name")
    """Extra environment variables of the agent container. Defaults to none."""
    env_from: list[EnvFromSource] = Field(default_factory=list, max_length=16)
    """ConfigMaps and Secrets whose keys become environment variables. Defaults to none."""
    node_selector: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict, max_length=MAX_LIST
    )
    """Node labels the agent pods must be scheduled on. Defaults to none."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_LIST)
    """Tolerations of the agent pods. Defaults to none."""
    affinity: Affinity | None = None
    """Node and pod affinity. Defaults to none."""
    topology_spread_constraints: Annotated[
        list[TopologySpreadConstraint], AfterValidator(_one_constraint_per_key_and_action)
    ] = Field(
        default_factory=list,
        max_length=16,
        # What Kubernetes itself requires of a pod: one constraint per key and action.
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
        },
    )
    """How the pods spread over zones or nodes. Defaults to none."""
    priority_class_name: DnsSubdomain | None = None
    """PriorityClass of the agent pods. Defaults to the cluster's default priority."""
    security_context: PodSecurityContext | None = None
    """Pod security settings, merged over the operator's restricted defaults. Defaults to
    those defaults."""
    container_security_context: ContainerSecurityContext | None = None
    """Agent container security settings, merged over the operator's restricted defaults.
    Defaults to those defaults."""
    volumes: NameKeyed[Volume] = list_map("name", max_items=16)
    """Extra volumes of the agent pods. Defaults to none."""
    volume_mounts: Annotated[
        list[VolumeMount], AfterValidator(lambda items: unique_by(items, "mount_path"))
    ] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["mountPath"],
        },
    )
    """Where the extra volumes appear in the agent container. Defaults to none."""
    termination_grace_period_seconds: int = Field(default=120, ge=1, le=86_400)
    """Seconds a pod has to finish its turns and hand back its tasks when it stops.
    Long turns need a long grace period."""
    service_account_name: DnsSubdomain | None = None
    """An existing ServiceAccount for the agent pods. Defaults to one the operator makes,
    named after the pool."""
    service_account: ServiceAccountSpec | None = None
    """The ServiceAccount the operator makes (when serviceAccountName is unset). Defaults
    to one without annotations."""

    cel_rules = (
        Rule(
            cel="!(has(self.serviceAccountName) && has(self.serviceAccount))",
            message="serviceAccountName (an existing account) and serviceAccount (the one "
            "the operator makes) are mutually exclusive",
            field_path=".serviceAccount",
            check=lambda s: s.service_account_name is None or s.service_account is None,
        ),
        Rule(
            cel="!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
            "self.volumes.exists(v, v.name == m.name))",
            message="every volumeMount must name one of volumes",
            field_path=".volumeMounts",
            check=lambda s: all(any(v.name == m.name for v in s.volumes) for m in s.volume_mounts),
        ),
        Rule(
            cel="!has(self.labels) || self.labels.all(k, "
            + " && ".join(f"!k.startsWith('{p}')" for p in RESERVED_LABEL_PREFIXES)
            + ")",
            message="label keys under agentpool.dev/ and app.kubernetes.io/ are the operator's",
            field_path=".labels",
            check=lambda s: not any(k.startswith(RESERVED_LABEL_PREFIXES) for k in s.labels),
        ),
    )
