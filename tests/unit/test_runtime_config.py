"""The runtime config document: parsing, composition, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_runtime.config import (
    RuntimeConfig,
    RuntimeConfigError,
    dump_runtime_config,
    load_runtime_config,
    parse_runtime_config,
)

DOC = """
pool: support
tools:
  definitions:
    - name: echo
      parameters: {type: object, properties: {text: {type: string}}}
      command: {argv: [echo, "{text}"], allowedBinaries: [echo]}
memory:
  pool: support
  redis: {url: "redis://127.0.0.1:6379/0"}
"""


def test_a_rendered_document_round_trips() -> None:
    config = parse_runtime_config(DOC)
    assert config.pool == "support"
    assert [d.name for d in config.tools.definitions] == ["echo"]
    assert config.memory is not None
    assert parse_runtime_config(dump_runtime_config(config)) == config


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ("pool: Bad_Name\n", "pool"),
        ("pool: p\nmemry: {}\n", "memry"),
        (
            "pool: p\ntools: {definitions: [{name: '1x', "
            "command: {argv: [a], allowedBinaries: [a]}}]}\n",
            "tools.definitions.0.name",
        ),
        ("pool: p\nmemory: {pool: q}\n", "memory.pool"),
        ("[1, 2]\n", "(document)"),
    ],
)
def test_invalid_documents_are_refused_naming_the_field(doc: str, named: str) -> None:
    with pytest.raises(RuntimeConfigError) as caught:
        parse_runtime_config(doc, source="cfg.yaml")
    assert str(caught.value).startswith("cfg.yaml: ")
    assert named in str(caught.value)


def test_not_yaml_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match="not valid YAML"):
        parse_runtime_config("pool: [unclosed")
    with pytest.raises(RuntimeConfigError, match="cannot read"):
        load_runtime_config(tmp_path / "absent.yaml")
    (tmp_path / "c.yaml").write_text("pool: ok\n")
    assert load_runtime_config(tmp_path / "c.yaml") == RuntimeConfig(pool="ok")
