"""OpenAI `response_format` -> the grammar that makes every answer parse (and validate)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jarvis.errors import InvalidRequest
from jarvis.json_grammar import schema_grammar
from jarvis.request_options import Grammar

JSON_LABEL = "JSON"


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    def wire(self) -> dict[str, Any]:
        """As OpenAI's `response_format` field, for a server that applies it itself."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def check(self) -> None:
        """The errors a client should get before anything runs, whichever backend serves it."""
        if self.type == "json_schema" and self.json_schema is None:
            raise InvalidRequest("response_format.json_schema is required when type is \"json_schema\".",
                                 field="response_format.json_schema")

    def grammar(self) -> Grammar | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return Grammar(schema_grammar({"type": "object"}, "response_format"), JSON_LABEL)
        if self.json_schema is None:
            raise InvalidRequest("response_format.json_schema is required when type is \"json_schema\".",
                                 field="response_format.json_schema")
        schema = self.json_schema.schema_ if self.json_schema.schema_ is not None else {"type": "object"}
        return Grammar(schema_grammar(schema, "response_format.json_schema.schema"), JSON_LABEL)
