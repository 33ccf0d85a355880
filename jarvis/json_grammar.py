"""JSON schemas -> llama.cpp GBNF grammars, with llama-cpp-python's converter (SchemaConverter).

The converter reports what it cannot handle with bare asserts; `check_schema` walks the schema
first so a request hears which part (`...properties.age.type`) is not supported, and any
complaint the converter still has is an InvalidRequest naming the schema, never a 500.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from llama_cpp.llama_grammar import SchemaConverter

from jarvis.errors import InvalidRequest

TYPES = {"string", "number", "integer", "boolean", "null", "object", "array"}
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
MAX_SCHEMA_BYTES = 64 * 1024
NL = "\n"


# llama-cpp-python 0.3.36's `char` lets raw control characters (a newline) into strings, which
# is not JSON; llama.cpp's own converter excludes them, and so does this one.
JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


def _converter() -> SchemaConverter:
    return SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _grammar(converter: SchemaConverter) -> str:
    if "char" in converter._rules:
        converter._rules["char"] = JSON_CHAR
    return converter.format_grammar()


def check_schema(schema: Any, param: str) -> None:
    """Raise InvalidRequest naming the first part of `schema` the grammar converter cannot take."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON schema object.", field=param)
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"{param} is larger than {MAX_SCHEMA_BYTES // 1024} KiB.", field=param)
    _walk(schema, param, schema)


def _walk(node: Any, path: str, root: dict) -> None:
    if node is True or node == {}:
        return
    if not isinstance(node, dict):
        raise InvalidRequest(f"{path} must be a schema object, got {json.dumps(node)[:60]}.", field=path)
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in TYPES:
            raise InvalidRequest(f"{path}.type {k!r} is not a JSON schema type ({', '.join(sorted(TYPES))}).",
                                 field=f"{path}.type")
    ref = node.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise InvalidRequest(f"{path}.$ref {ref!r} is not supported: only references inside the schema "
                                 "(\"#/$defs/...\") are.", field=f"{path}.$ref")
        target: Any = root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise InvalidRequest(f"{path}.$ref {ref!r} points at nothing in the schema.", field=f"{path}.$ref")
            target = target[part]
    pattern = node.get("pattern")
    if pattern is not None and not (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")):
        raise InvalidRequest(f"{path}.pattern must be a string anchored with ^ and $ to be turned into a grammar.",
                             field=f"{path}.pattern")
    if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
        raise InvalidRequest(f"{path}.enum must be a non-empty list.", field=f"{path}.enum")
    required = node.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        raise InvalidRequest(f"{path}.required must be a list of property names.", field=f"{path}.required")
    for key in _SUBSCHEMA_MAPS:
        if key in node:
            if not isinstance(node[key], dict):
                raise InvalidRequest(f"{path}.{key} must be an object.", field=f"{path}.{key}")
            for name, sub in node[key].items():
                _walk(sub, f"{path}.{key}.{name}", root)
    for key in _SUBSCHEMA_LISTS:
        if key in node:
            if not isinstance(node[key], list):
                raise InvalidRequest(f"{path}.{key} must be a list of schemas.", field=f"{path}.{key}")
            for i, sub in enumerate(node[key]):
                _walk(sub, f"{path}.{key}[{i}]", root)
    items = node.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            _walk(sub, f"{path}.items[{i}]", root)
    elif items is not None:
        _walk(items, f"{path}.items", root)
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        _walk(extra, f"{path}.additionalProperties", root)


def _convert(converter: SchemaConverter, schema: dict, name: str, url: str, param: str) -> str:
    try:
        resolved = converter.resolve_refs(copy.deepcopy(schema), url)
        return converter.visit(resolved, name)
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise InvalidRequest(f"{param} cannot be turned into a grammar: {e or type(e).__name__}.",
                             field=param) from None


def schema_grammar(schema: dict, param: str) -> str:
    """A grammar whose `root` is exactly the JSON documents `schema` allows."""
    check_schema(schema, param)
    converter = _converter()
    _convert(converter, schema, "", "schema", param)
    return _grammar(converter)


def literal(text: str) -> str:
    """A GBNF string literal for `text`."""
    return json.dumps(text, ensure_ascii=False)


def tool_call_grammar(functions: Iterable[tuple[str, dict]], open_tag: str, close_tag: str, max_calls: int,
                      param: str = "tools") -> str:
    """`root`: 1..max_calls tool calls, each `open_tag {"name": N, "arguments": ARGS} close_tag` where ARGS
    follows that function's parameter schema."""
    converter = _converter()
    alternatives = []
    for i, (name, parameters) in enumerate(functions):
        where = f"{param}[{i}].function.parameters"
        check_schema(parameters, where)
        args_rule = _convert(converter, parameters, f"fn{i}-args", f"tool{i}", where)
        head = literal('{"name": ' + json.dumps(name) + ', "arguments": ')
        alternatives.append(f"{head} {args_rule} {literal('}')}")
    rules = _grammar(converter)
    call = f"{literal(open_tag + NL)} ( {' | '.join(alternatives)} ) {literal(NL + close_tag)}"
    repeat = f"( {literal(NL)} call ){{0,{max_calls - 1}}}" if max_calls > 1 else ""
    return f"root ::= call {repeat}\ncall ::= {call}\n{rules}"
