"""The Agentpool API: AgentPool and AgentTool (group agentpool.dev, version v1alpha1).

These pydantic models are the single source of truth. `crdgen` turns them into the CRDs
(structural OpenAPI v3 with defaults, enums, ranges and CEL rules), the Helm chart's copy
of the CRDs and docs/crd-reference.md. Field docstrings become the CRD's documentation
(what `kubectl explain` shows), so they are plain text written for users, and each says
its default.

- `schema`: the machinery (base model, rules, string types);
- `common`: references, selectors, headers, conditions, resilience and cache;
- `podtemplate`: the pod fields a pool may change;
- `agentpool` and `agenttool`: the two kinds.
"""

from agentpool_operator.api.agentpool import *  # noqa: F403
from agentpool_operator.api.agenttool import *  # noqa: F403
from agentpool_operator.api.common import *  # noqa: F403
from agentpool_operator.api.podtemplate import *  # noqa: F403
from agentpool_operator.api.schema import *  # noqa: F403
