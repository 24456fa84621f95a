"""The console scripts' argument handling and the logging format choice."""

from __future__ import annotations

from agent_runtime.logging_config import wants_json
from agent_runtime.main import parse_args as agent_args
from agentpool_operator.main import parse_args as operator_args
from agentpool_operator.main import watched_namespaces


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
    assert (args.standalone, args.metrics_port, args.health_port) == (True, 9090, 9091)
    assert (args.log_level, args.log_format) == ("debug", "json")
    assert watched_namespaces(args, {}) == ["team-a"]
