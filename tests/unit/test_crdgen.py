"""The generated CRDs: fresh, structural, bounded, and defaulting like the models."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given

from agentpool_operator import api, crdgen
from agentpool_operator.structural import to_structural
from tests.unit.api_strategies import pool_specs, tool_specs

Schema = dict[str, Any]


@functools.cache
def _crd(kind: str) -> dict[str, Any]:
    [found] = [crdgen.crd(k) for k in crdgen.KINDS if k.kind == kind]
    return found


def _schema(kind: str) -> Schema:
    schema: Schema = _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _apply_defaults(value: Any, schema: Schema) -> Any:
    """What the API server's structural defaulting does (apiextensions' algorithm)."""
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, sub_value in value.items():
            if name in schema.get("properties", {}):
                _apply_defaults(sub_value, schema["properties"][name])
            elif isinstance(schema.get("additionalProperties"), dict):
                _apply_defaults(sub_value, schema["additionalProperties"])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _apply_defaults(item, schema["items"])
    return value


def _without_empty_collections(value: Any) -> Any:
    """Drop `[]` and `{}` members: the CRDs leave empty collections out, the models fill
    them in; both mean the same."""
    if isinstance(value, dict):
        pruned = {k: _without_empty_collections(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ([], {})}
    if isinstance(value, list):
        return [_without_empty_collections(v) for v in value]
    return value


def test_the_committed_files_are_not_stale() -> None:
    stale = crdgen.stale_files()
    assert stale == [], f"run `make crds`: {stale}"
    assert crdgen.main(["--check"]) == 0


def test_check_names_a_stale_file_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--write", "--root", str(tmp_path)]) == 0
    chart_copy = tmp_path / "charts/agentpool/crds/agentpool.dev_agenttools.yaml"
    chart_copy.write_text(chart_copy.read_text().replace("maxLength: 4096", "maxLength: 5"))
    capsys.readouterr()
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale: charts/agentpool/crds/agentpool.dev_agenttools.yaml" in capsys.readouterr().err
    crdgen.main(["--write", "--root", str(tmp_path)])
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0


def test_the_chart_carries_the_same_crds(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    for crd in (tmp_path / "crds").iterdir():
        chart_copy = tmp_path / "charts/agentpool/crds" / crd.name
        assert chart_copy.read_bytes() == crd.read_bytes()
    shutil.rmtree(tmp_path / "crds")
    assert len(crdgen.stale_files(tmp_path)) == 2


@pytest.mark.parametrize("kind", ["AgentPool", "AgentTool"])
def test_schemas_are_structural(kind: str) -> None:
    for path, node in _nodes(_schema(kind)):
        assert not {"$ref", "$defs", "title", "allOf", "oneOf", "const"} & node.keys(), path
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:  # only int-or-string, the one union a CRD allows
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, f"{path} has no type"
        is_field = path.count(".") >= 2 and not path.endswith(("[]", "{}"))
        if is_field:
            assert node.get("description"), f"{path} is undocumented"


@pytest.mark.parametrize("kind", ["AgentPool", "AgentTool"])
def test_strings_and_lists_are_bounded_for_the_cel_cost_budget(kind: str) -> None:
    for path, node in _nodes(_schema(kind)["properties"]["spec"]):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path} has no maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"


def test_every_rule_is_in_the_crd_exactly_where_its_model_is() -> None:
    rules_in_crd = [
        rule["rule"]
        for kind in ("AgentPool", "AgentTool")
        for _, node in _nodes(_schema(kind))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    declared = {
        rule.cel
        for model in vars(api).values()
        if isinstance(model, type) and issubclass(model, api.ApiModel)
        for rule in model.cel_rules
    }
    # Besides the models' rules, the CRD carries the checks on map keys and decimal
    # bounds (generated from the field types) and int-or-percent's sign.
    generated = {
        r
        for r in rules_in_crd
        if r.startswith("self.all(k,") or r.startswith("double(self)") or r.startswith("type(self)")
    }
    assert declared == set(rules_in_crd) - generated
    assert generated
    # Rules of models used in several places appear once per use.
    assert len(rules_in_crd) > len(declared)


def test_agent_pool_has_the_scale_subresource_columns_and_category() -> None:
    spec = _crd("AgentPool")["spec"]
    version = spec["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Domain"] == ".spec.domain"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Desired"] == ".status.desiredReplicas"
    assert columns["Demand"] == ".status.demand"
    assert columns["Load%"] == ".status.loadPercent"
    assert columns["Status"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"] == ".metadata.creationTimestamp"
    assert spec["names"]["shortNames"] == ["ap"]
    assert spec["names"]["categories"] == [crdgen.CATEGORY]
    assert spec["scope"] == "Namespaced"


def test_agent_tool_columns_and_category() -> None:
    spec = _crd("AgentTool")["spec"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[:2] == ["Implementation", "Ready"]
    assert spec["names"]["categories"] == [crdgen.CATEGORY]


def test_parameters_keep_any_json_schema_but_require_type_object() -> None:
    parameters = _schema("AgentTool")["properties"]["spec"]["properties"]["parameters"]
    assert parameters["type"] == "object"
    assert parameters["x-kubernetes-preserve-unknown-fields"] is True
    assert parameters["properties"]["type"]["enum"] == ["object"]


def test_optional_fields_are_omitted_not_nullable() -> None:
    model = _schema("AgentPool")["properties"]["spec"]["properties"]["model"]
    assert "temperature" not in model["required"]
    assert "default" not in model["properties"]["temperature"]
    assert "nullable" not in model["properties"]["temperature"]


def test_exclusive_bounds_use_the_openapi_v3_form() -> None:
    converted = to_structural({"type": "number", "exclusiveMinimum": 0})
    assert (converted["minimum"], converted["exclusiveMinimum"]) == (0, True)


@pytest.mark.parametrize("kind", ["AgentPool", "AgentTool"])
def test_the_spec_has_no_floats(kind: str) -> None:
    for path, node in _nodes(_schema(kind)["properties"]["spec"], "spec"):
        assert node.get("type") != "number", f"{path} is a float; use an integer or a string"


@pytest.mark.parametrize("kind", ["AgentPool", "AgentTool"])
def test_every_optional_field_says_its_default_in_plain_text(kind: str) -> None:
    spec = _schema(kind)["properties"]["spec"]
    for path, node, required in _fields(spec, "spec"):
        description = node.get("description", "")
        assert description, f"{path} is undocumented"
        for markup in ("`", "**", "]("):
            assert markup not in description, f"{path}: markdown in {description!r}"
        if not required:
            assert "Defaults to" in description, f"{path} does not say its default"


def _fields(schema: Schema, path: str) -> Iterator[tuple[str, Schema, bool]]:
    container = schema.get("items", schema) if schema.get("type") == "array" else schema
    if isinstance(container.get("additionalProperties"), dict):
        container = container["additionalProperties"]
    for name, sub in container.get("properties", {}).items():
        yield f"{path}.{name}", sub, name in container.get("required", [])
        yield from _fields(sub, f"{path}.{name}")


def test_enum_values_are_camel_case_constants() -> None:
    for kind in ("AgentPool", "AgentTool"):
        for path, node in _nodes(_schema(kind)["properties"]["spec"], "spec"):
            for value in node.get("enum", []):
                if path.endswith((".method", ".medium", ".type")):
                    continue  # HTTP methods, emptyDir medium and JSON Schema's own words
                assert value[:1].isupper(), f"{path}: {value!r} is not CamelCase"


def test_an_unsupported_ref_is_an_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        to_structural({"$ref": "https://example.com/schema.json"})


def test_the_reference_documents_every_spec_field() -> None:
    reference = crdgen.generated_files()[crdgen.REPO_ROOT / "docs" / "crd-reference.md"]
    for kind in ("AgentPool", "AgentTool"):
        for path, node in _nodes(_schema(kind)["properties"]["spec"], "spec"):
            if "[]" in path or "{}" in path or node is None:
                continue
            assert f"`{path}`" in reference, path
    assert "minReplicas must not exceed maxReplicas" in reference


def test_names_are_checked_on_metadata_name() -> None:
    pool = _schema("AgentPool")["properties"]["metadata"]["properties"]["name"]
    assert pool["maxLength"] == api.MAX_POOL_NAME
    assert pool["pattern"] == api.DNS1035_LABEL
    tool = _schema("AgentTool")["properties"]["metadata"]["properties"]["name"]
    assert tool["pattern"] == api.AgentTool.name_rule.pattern


@given(pool_specs())
def test_server_side_defaults_equal_the_model_defaults_for_pools(spec: dict[str, Any]) -> None:
    defaulted = _apply_defaults(copy.deepcopy(spec), _schema("AgentPool")["properties"]["spec"])
    model = api.AgentPoolSpec.model_validate(spec)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _without_empty_collections(defaulted) == _without_empty_collections(dumped)
    assert api.AgentPoolSpec.model_validate(defaulted) == model


@given(tool_specs())
def test_server_side_defaults_equal_the_model_defaults_for_tools(spec: dict[str, Any]) -> None:
    defaulted = _apply_defaults(copy.deepcopy(spec), _schema("AgentTool")["properties"]["spec"])
    model = api.AgentToolSpec.model_validate(spec)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _without_empty_collections(defaulted) == _without_empty_collections(dumped)
    assert api.AgentToolSpec.model_validate(defaulted) == model


def test_generated_yaml_loads_back_to_the_crd() -> None:
    for kind in crdgen.KINDS:
        path = crdgen.REPO_ROOT / "crds" / f"agentpool.dev_{kind.plural}.yaml"
        assert yaml.safe_load(path.read_text()) == crdgen.crd(kind)


def test_the_module_runs_as_a_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentpool_operator.crdgen", "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
