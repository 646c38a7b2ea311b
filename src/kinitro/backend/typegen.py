"""TypeScript types of the dashboard, generated from the backend's own schemas.

The dashboard reads two things: the REST API (its OpenAPI schema, built from the routes'
response models in :mod:`kinitro.protocol.views`) and the realtime feed (the JSON schema
of :mod:`kinitro.protocol.realtime`'s messages). This module turns both into
``web/src/generated/api.ts``: one TypeScript declaration per schema, and ``ApiGet``, the
response type of every ``GET`` route by path. ``scripts/build-web`` runs it before
``tsc``, so a field renamed in Python breaks the dashboard's type check, not the page.

    python -m kinitro.backend.typegen           write web/src/generated/api.ts
    python -m kinitro.backend.typegen --check   exit 1 when it is stale

The output depends only on the schemas (sorted names, no timestamps), so the committed
file is stale exactly when a schema changed; ``tests/dashboard/test_typegen.py`` checks it.

Only the JSON-schema shapes pydantic emits are translated: objects (properties,
``additionalProperties``), arrays and tuples (``prefixItems``), ``anyOf``/``oneOf``,
``enum``/``const``, ``$ref`` and the scalar types. Anything else is an error here, never a
silent ``unknown``. A type the backend sends (a response's or a realtime message's, not
only a request body's) has every field required: the backend always sends every field
(no ``exclude_unset``/``exclude_none`` anywhere), defaults included.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from kinitro.backend.app import create_app
from kinitro.backend.settings import Settings
from kinitro.protocol.realtime import CLIENT_MESSAGE_ADAPTER, snapshot_schema

OUTPUT: Final = Path(__file__).parent / "web" / "src" / "generated" / "api.ts"
COMMAND: Final = "scripts/build-web (or: python -m kinitro.backend.typegen)"

Schema = Mapping[str, Any]
SENT: Final = "x-kinitro-sent"
"""Marks a definition the backend sends (see :func:`_mark_sent`)."""


class TypegenError(Exception):
    """A schema this generator cannot translate."""


def ts_name(name: str) -> str:
    """A schema name as a TypeScript identifier (``Page_Job_`` → ``Page_Job``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")


def _ref(ref: str) -> str:
    return ts_name(ref.rsplit("/", 1)[-1])


def _literal(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    raise TypegenError(f"unsupported literal {value!r}")


def _union(parts: list[str]) -> str:
    out: list[str] = []
    for part in parts:
        if part not in out:
            out.append(part)
    return " | ".join(out) if out else "never"


def ts_type(schema: Schema) -> str:
    """The TypeScript type of a JSON schema (a property's or a definition's)."""
    if "$ref" in schema:
        return _ref(schema["$ref"])
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return _union([_literal(v) for v in schema["enum"]])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _union([_member(s) for s in schema[key]])
    if "allOf" in schema:
        return " & ".join(_member(s) for s in schema["allOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([ts_type({**schema, "type": k}) for k in kind])
    match kind:
        case None:
            return "unknown"  # any JSON value
        case "null":
            return "null"
        case "boolean":
            return "boolean"
        case "integer" | "number":
            return "number"
        case "string":
            return "string"
        case "array":
            if "prefixItems" in schema:
                return "[" + ", ".join(ts_type(s) for s in schema["prefixItems"]) + "]"
            return f"{_member(schema.get('items', {}))}[]"
        case "object":
            return _object(schema)
    raise TypegenError(f"unsupported schema type {kind!r}")


def _member(schema: Schema) -> str:
    """A type inside a union or an array: parenthesised when it is itself a union."""
    text = ts_type(schema)
    return f"({text})" if " | " in text or " & " in text else text


def _object(schema: Schema, indent: str = "") -> str:
    props: Mapping[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not props:
        if extra is False:
            return "Record<string, never>"
        value = "unknown" if extra in (None, True) else ts_type(extra)
        return f"Record<string, {value}>"
    required = set(props) if schema.get(SENT) else set(schema.get("required", []))
    lines = ["{"]
    for name, prop in props.items():
        doc = prop.get("description")
        if doc:
            lines.append(f"{indent}  /** {_doc(doc)} */")
        key = name if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name) else json.dumps(name)
        optional = "" if name in required else "?"
        lines.append(f"{indent}  {key}{optional}: {ts_type(prop)};")
    if extra not in (None, False, True):
        lines.append(f"{indent}  [key: string]: {ts_type(extra)} | undefined;")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _doc(text: str) -> str:
    return " ".join(text.split()).replace("*/", "* /")


def declaration(name: str, schema: Schema) -> str:
    """``export interface`` for an object with properties, else ``export type``."""
    doc = schema.get("description")
    head = f"/** {_doc(doc)} */\n" if doc else ""
    if schema.get("type") == "object" and schema.get("properties"):
        return f"{head}export interface {ts_name(name)} {_object(schema)}\n"
    return f"{head}export type {ts_name(name)} = {ts_type(schema)};\n"


# ---------------------------------------------------------------------- sources


def openapi_schema() -> dict[str, Any]:
    """The backend's OpenAPI schema (the app is built, never started)."""
    return create_app(Settings()).openapi()


def realtime_schemas() -> dict[str, Schema]:
    """Definitions of the realtime messages (both directions), plus ``ServerMessage``,
    ``ClientMessage`` and ``RealtimeEvent`` themselves."""
    template = "#/components/schemas/{model}"
    defs: dict[str, Schema] = {}
    for name, schema in (
        ("ServerMessage", snapshot_schema(template)),
        ("ClientMessage", CLIENT_MESSAGE_ADAPTER.json_schema(ref_template=template)),
    ):
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
    events = defs["Events"]["properties"]["events"]["items"]
    defs["RealtimeEvent"] = {
        "description": "Every realtime event payload, discriminated by `event_type`.",
        **events,
    }
    return defs


def _merge(into: dict[str, Schema], more: Mapping[str, Schema], where: str) -> None:
    """Add ``more`` to ``into``; a name both have must declare the same TypeScript (the
    same model reached from REST and from the realtime feed)."""
    for name, schema in more.items():
        if name not in into:
            into[name] = schema
        elif _shape(into[name]) != _shape(schema):
            raise TypegenError(f"two different schemas named {name!r} ({where})")


def _shape(schema: Schema) -> str:
    """A declaration without its comments (a schema's description depends on its source)."""
    text = declaration("_", schema)
    return "\n".join(x for x in text.splitlines() if not x.strip().startswith("/**"))


def _get_routes(openapi: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, response type) of every GET route with a JSON 200 response."""
    out = []
    for path, item in sorted(openapi.get("paths", {}).items()):
        content = item.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema:
            out.append((path, ts_type(schema)))
    return out


def _refs(node: Any) -> set[str]:
    """Names of the definitions ``node`` refers to directly."""
    if isinstance(node, Mapping):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _mark_sent(schemas: dict[str, Schema], roots: set[str]) -> None:
    """Mark every definition reachable from ``roots`` (what the backend sends)."""
    todo = [r for r in roots if r in schemas]
    while todo:
        name = todo.pop()
        if schemas[name].get(SENT):
            continue
        schemas[name] = {**schemas[name], SENT: True}
        todo += [r for r in _refs(schemas[name]) if r in schemas]


def render(openapi: Mapping[str, Any], realtime: Mapping[str, Schema]) -> str:
    """The text of ``api.ts``."""
    schemas: dict[str, Schema] = {}
    _merge(schemas, openapi.get("components", {}).get("schemas", {}), "OpenAPI")
    _merge(schemas, realtime, "realtime")
    responses = [
        op.get("responses", {})
        for item in openapi.get("paths", {}).values()
        for op in item.values()
    ]
    _mark_sent(schemas, _refs(responses) | {"ServerMessage"})
    parts = [
        "// Generated by kinitro.backend.typegen from the backend's OpenAPI schema and the\n"
        "// realtime JSON schema. Do not edit: change the Python models and run\n"
        f"// {COMMAND}.\n",
    ]
    parts += [declaration(name, schemas[name]) for name in sorted(schemas, key=ts_name)]
    routes = "".join(f"  {json.dumps(p)}: {t};\n" for p, t in _get_routes(openapi))
    head = "/** The response of every JSON GET route, by path. */\n"
    parts.append(f"{head}export interface ApiGet {{\n{routes}}}\n")
    return "\n".join(parts)


def generate() -> str:
    return render(openapi_schema(), realtime_schemas())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when api.ts is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = generate()
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run {COMMAND} and commit it", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
