"""The console scripts' argument handling and the logging format choice."""

from __future__ import annotations

from agent_runtime.logging_config import wants_json
from agent_runtime.main import parse_args as agent_args
from agentpool_operator.main import operator_settings
from agentpool_operator.main import parse_args as operator_args


def watched_namespaces(args: object, env: dict[str, str]) -> list[str]:
    return list(operator_settings(args, env).watch_namespaces)  # type: ignore[arg-type]


def test_logs_are_json_in_pods_and_pretty_in_a_terminal() -> None:
    assert wants_json(stream_is_tty=False, env={})
    assert not wants_json(stream_is_tty=True, env={})
    assert wants_json(stream_is_tty=True, env={"AGENTPOOL_LOG_FORMAT": "json"})
    assert not wants_json(stream_is_tty=False, env={"AGENTPOOL_LOG_FORMAT": "console"})
    assert wants_json(stream_is_tty=False, env={"AGENTPOOL_LOG_FORMAT": "bogus"})


def test_operator_watches_the_cluster_by_default() -> None:
    assert watched_namespaces(operator_args([]), {}) == []
    assert watched_namespaces(operator_args(["--all-namespaces"]), {}) == []


def test_operator_namespaces_from_flags_or_env() -> None:
    args = operator_args(["--namespace", "a", "--namespace", "b"])
    assert watched_namespaces(args, {"AGENTPOOL_WATCH_NAMESPACES": "x"}) == ["a", "b"]
    env = {"AGENTPOOL_WATCH_NAMESPACES": " team-a, ,team-b "}
    assert watched_namespaces(operator_args([]), env) == ["team-a", "team-b"]
    assert watched_namespaces(operator_args(["--all-namespaces"]), env) == []


def test_agent_port_flag() -> None:
    assert agent_args(["--port", "9000"]).port == 9000


def test_operator_accepts_the_flags_the_chart_renders() -> None:
    args = operator_args(
        [
            "--namespace=team-a",
            "--standalone",
            "--metrics-port=9090",
            "--health-port=9091",
            "--log-level=DEBUG",
            "--log-format=json",
        ]
    )
    settings = operator_settings(args, {"AGENTPOOL_LEADER_ELECT": "true"})
    assert (settings.leader_elect, settings.metrics_port, settings.health_port) == (
        False,
        9090,
        9091,
    )
    assert (args.log_level, args.log_format) == ("debug", "json")
    assert settings.watch_namespaces == ("team-a",)


def test_operator_settings_come_from_the_chart_environment() -> None:
    env = {
        "AGENTPOOL_AGENT_IMAGE": "registry.local/agent:1.2",
        "AGENTPOOL_DEFAULT_REDIS_URL": "redis://redis.agentpool-system:6379/0",
        "AGENTPOOL_OPERATOR_NAMESPACE": "ops",
        "AGENTPOOL_LEADER_ELECT": "true",
        "AGENTPOOL_METRICS_PORT": "",
    }
    settings = operator_settings(operator_args([]), env)
    assert settings.agent_image == "registry.local/agent:1.2"
    assert settings.default_redis_url == "redis://redis.agentpool-system:6379/0"
    assert (settings.operator_namespace, settings.leader_elect) == ("ops", True)
    assert settings.metrics_port == 9090  # empty keeps the default
