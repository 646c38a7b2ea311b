"""The dashboard's generated TypeScript types match the backend's schemas."""

from __future__ import annotations

from kinitro.backend import typegen


def test_generated_types_are_up_to_date() -> None:
    committed = typegen.OUTPUT.read_text() if typegen.OUTPUT.exists() else ""
    assert typegen.generate() == committed, (
        f"{typegen.OUTPUT.name} is stale: run {typegen.COMMAND} and commit it"
    )


def test_every_schema_shape_is_translated() -> None:
    assert typegen.ts_type({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string | null"
    assert typegen.ts_type({"type": "array", "items": {"enum": ["a", "b"]}}) == '("a" | "b")[]'
    assert typegen.ts_type({"type": "array", "prefixItems": [{"type": "integer"}] * 2}) == (
        "[number, number]"
    )
    assert typegen.ts_type({"$ref": "#/components/schemas/Page_Job_"}) == "Page_Job"
    assert typegen.ts_type({"type": "object", "additionalProperties": {"type": "number"}}) == (
        "Record<string, number>"
    )
    assert typegen.ts_type({}) == "unknown"
