"""The load section of the runtime config: the scaling signal each replica publishes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.section import ConfigSection

LoadSignal = Literal["activeTurns", "activeTurnsAndQueuedTasks"]
"""What counts as demand: turns running, or those plus tasks waiting in the queue."""


class LoadSettings(ConfigSection):
    """What each replica publishes for the autoscaler, and how often."""

    signal: LoadSignal = Field(
        default="activeTurns",
        description="activeTurns, or activeTurnsAndQueuedTasks (needs memory.redis: the "
        "task queue lives there).",
    )
    publish_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often a replica publishes its load."
    )


# ----------------------------------------------------------------------------- where load is
#
# Each replica writes one field of one Redis hash per pool, in the pool's Redis:
#
#     key    {keyPrefix}:{namespace}:{pool}:load       (memory.keyPrefix; parts %-encoded)
#     field  the pod's name
#     value  {"v": 1, "activeTurns": 3, "capacity": 8, "queuedTasks": 0,
#             "draining": false, "at": 1764800000.25, "refusedTurns": 2}
#
# `refusedTurns` (added later, so optional: written only when not 0, and a replica of an
# older version writes none; absent reads as 0) is the callers this replica refused with 503
# for lack of a free slot within the last `stale_after(interval)` seconds: demand that
# `activeTurns` cannot show, since it never exceeds `capacity` (agent/refusals.py says
# why a window and not a counter). An older reader ignores the field.
#
# on every change and at least every `publishIntervalSeconds`. A sample older than
# `stale_after(interval)` is a dead pod's: readers ignore it, writers delete it, and the
# whole key expires that long after the last replica stopped writing. The operator
# reads every pool of one Redis in one round trip: a pipeline of HGETALL on
# `load_key(...)` for each pool it knows, decoded with `decode_samples`.
#
# Before it removes replicas, the autoscaler asks the ones it chose to drain:
#
#     key    {keyPrefix}:{namespace}:{pool}:drain
#     field  the pod's name
#     value  {"v": 1, "until": 1764800030.0}
#
# A replica reads its field with every publication (the same script, no extra round
# trip): while `until` is ahead it takes no new turns, reports `draining: true` and fails
# readiness; once the request is gone or past (the operator changed its mind, or died
# before lowering replicas) it takes turns again. The pod is then deleted by the
# ReplicaSet, and its preStop hook waits for the turns it still runs.
#
# A caller waiting for a pool that has no ready replica (pool-as-tool, answered with
# connection refused or a proxy's 503) asks for it to be woken, in the caller's OWN Redis
# (the only one it has credentials for), under a key naming the pool it waits for:
#
#     key    {keyPrefix}:{namespace}:{pool}:wake       (the pool waited for)
#     member a unique id per waiting call
#     score  Unix time until which the caller waits (its call's deadline)
#
# The caller removes its member when its call ends (answered or given up); a member
# whose score has passed is dead whether removed or not (a caller that died), and the
# whole key expires after its latest score. The autoscaler, for each pool with no ready
# replica only, counts the live members (score > now) of that pool's key in every Redis
# it reads, pipelined with the samples: each one is demand, and one wakes the pool.
#
# Pure (no Redis here): the operator imports only `agent_runtime.config`.

LOAD_SAMPLE_VERSION = 1


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One replica's load at one moment.

    A plain dataclass, not a pydantic model: the autoscaler builds one per replica of
    every pool every second, and a model's construction was the largest cost of its tick
    (benchmarks/README.md). What comes from Redis is validated by `_WireSample`."""

    active_turns: int
    capacity: int
    queued_tasks: int = 0
    draining: bool = False
    at: float = 0.0
    """Unix time of the sample (the replica's clock)."""
    refused_turns: int = 0
    """Callers refused for lack of a slot within the last `stale_after` seconds."""


class _WireSample(BaseModel):
    """A sample as stored in Redis (camelCase), with its bounds."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel)

    active_turns: int = Field(ge=0)
    capacity: int = Field(ge=1)
    queued_tasks: int = Field(default=0, ge=0)
    draining: bool = False
    at: float
    refused_turns: int = Field(default=0, ge=0)


def validate_sample(body: object) -> LoadSample:
    """A sample from its stored form (without the version), validated
    (`pydantic.ValidationError` when it is not one)."""
    wire = _WireSample.model_validate(body)
    return LoadSample(
        wire.active_turns,
        wire.capacity,
        wire.queued_tasks,
        wire.draining,
        wire.at,
        wire.refused_turns,
    )


def pool_root(key_prefix: str, pool: PoolIdentity) -> str:
    """What every Redis name of the pool starts with (`memory.keys.KeySpace.root`)."""
    return ":".join(quote(part, safe="") for part in (key_prefix, pool.namespace, pool.name))


def load_key(key_prefix: str, pool: PoolIdentity) -> str:
    """The hash that holds a pool's load samples (one field per pod)."""
    return pool_root(key_prefix, pool) + ":load"


def drain_key(key_prefix: str, pool: PoolIdentity) -> str:
    """The hash of the autoscaler's drain requests (one field per pod, see `DrainRequest`)."""
    return pool_root(key_prefix, pool) + ":drain"


def wake_key(key_prefix: str, pool: PoolIdentity) -> str:
    """The sorted set of requests that `pool` be woken (see the layout above); it lives
    in the waiting caller's Redis, which may be another pool's."""
    return pool_root(key_prefix, pool) + ":wake"


# How a wake request is written (the runtime's pool-as-tool calls and the operator's
# activator both do). KEYS: the wake key. ARGV: member, its deadline, now. Adds the
# member, drops dead ones and keeps the key alive until its latest deadline, atomically:
# a later request with an earlier deadline must not cut a longer wait short (a plain
# PEXPIREAT would).
WAKE_REGISTER_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) * 1000) + 1000)
end
return 1
"""


def task_queue_keys(key_prefix: str, pool: PoolIdentity) -> tuple[str, str]:
    """The task queue's stream and the count of tasks waiting behind their conversation:
    with no replica left to publish a sample, the autoscaler reads these to wake the pool."""
    root = pool_root(key_prefix, pool)
    return f"{root}:tasks:stream", f"{root}:tasks:waiting"


def stale_after(publish_interval_seconds: float) -> float:
    """Seconds after which a sample is a dead pod's (three missed publications, plus 2 s of
    clock skew between the replica and the reader)."""
    return 3 * publish_interval_seconds + 2.0


def encode_sample(sample: LoadSample) -> str:
    """The hash field's value."""
    body: dict[str, object] = {
        "v": LOAD_SAMPLE_VERSION,
        "activeTurns": sample.active_turns,
        "capacity": sample.capacity,
        "queuedTasks": sample.queued_tasks,
        "draining": sample.draining,
        "at": sample.at,
    }
    if sample.refused_turns:
        # Only when there are any: the common sample stays the older format, which costs
        # the autoscaler's decoding nothing more and reads fast in an older operator too.
        body["refusedTurns"] = sample.refused_turns
    return json.dumps(body, separators=(",", ":"))


def decode_sample(
    value: str | bytes, *, loads: Callable[[str | bytes], Any] = json.loads
) -> LoadSample | None:
    """A field's sample; None for a value this version cannot read (skipped, not fatal).
    `loads` parses JSON (the autoscaler passes a faster parser than the standard one)."""
    try:
        body = loads(value)
        if not isinstance(body, dict) or body.pop("v", None) != LOAD_SAMPLE_VERSION:
            return None
        return _well_formed(body) or validate_sample(body)
    except (ValueError, ValidationError):
        return None


_FIELDS_WITHOUT_REFUSALS = frozenset({"activeTurns", "capacity", "queuedTasks", "draining", "at"})
_FIELDS = _FIELDS_WITHOUT_REFUSALS | {"refusedTurns"}


def _well_formed(body: dict[str, object]) -> LoadSample | None:
    """The sample as a replica writes it, built without pydantic's validation; None for
    anything else (which then gets the full validation). Why: the autoscaler decodes every
    replica's sample of every pool every second, and validation was most of that cost
    (benchmarks/README.md, the autoscaler's tick); this accepts only what validation would."""
    keys = body.keys()
    refused = 0  # absent: the common sample (and an older replica's)
    if keys == _FIELDS:
        written = body["refusedTurns"]
        if type(written) is not int or written < 0:
            return None
        refused = written
    elif keys != _FIELDS_WITHOUT_REFUSALS:
        return None
    turns, capacity, queued = body["activeTurns"], body["capacity"], body["queuedTasks"]
    draining, at = body["draining"], body["at"]
    if not (type(turns) is int and type(capacity) is int and type(queued) is int):
        return None  # bools and whole floats too: validation decides those
    if turns < 0 or capacity < 1 or queued < 0 or type(draining) is not bool:
        return None
    if not (type(at) is float or type(at) is int) or not math.isfinite(at):
        return None
    return LoadSample(turns, capacity, queued, draining, float(at), refused)


def decode_samples(
    fields: Mapping[str, str] | Mapping[bytes, bytes],
    *,
    now: float,
    publish_interval_seconds: float,
) -> dict[str, LoadSample]:
    """The fresh samples of one pool's hash (as HGETALL returns it), by pod name."""
    limit = stale_after(publish_interval_seconds)
    out: dict[str, LoadSample] = {}
    for pod, value in fields.items():
        sample = decode_sample(value)
        if sample is not None and now - sample.at <= limit:
            out[pod.decode() if isinstance(pod, bytes) else pod] = sample
    return out


class DrainRequest(BaseModel):
    """The autoscaler's request that one replica drain (see the layout above)."""

    model_config = ConfigDict(frozen=True)

    until: float = Field(description="Unix time after which the request lapses.")


def encode_drain_request(request: DrainRequest) -> str:
    return json.dumps({"v": LOAD_SAMPLE_VERSION, "until": request.until}, separators=(",", ":"))


def decode_drain_request(value: str | bytes | None) -> DrainRequest | None:
    """A field's request; None for no field or a value this version cannot read."""
    if value is None:
        return None
    try:
        body = json.loads(value)
        if not isinstance(body, dict) or body.pop("v", None) != LOAD_SAMPLE_VERSION:
            return None
        return DrainRequest.model_validate(body)
    except (ValueError, ValidationError):
        return None
