"""Structured output: grammar-constrained JSON from pydantic schemas, with a safe default."""

from __future__ import annotations

import json
import logging
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from continuum.backends.base import Backend, Completion, CompletionRequest

log = logging.getLogger("continuum.structured")
T = TypeVar("T", bound=BaseModel)


class StructuredResult(BaseModel, Generic[T]):
    value: T
    parsed: bool  # False: the model's output did not validate and ``value`` is the default
    completion: Completion
    error: str | None = None


def json_schema_for(model: type[BaseModel]) -> dict:
    """A JSON schema for grammar construction (pydantic's, with $defs inlined by reference)."""
    return model.model_json_schema()


async def complete_structured(
    backend: Backend, request: CompletionRequest, schema: type[T], default: T
) -> StructuredResult[T]:
    """Ask for JSON matching ``schema``; fall back to ``default`` if it still fails to parse."""
    req = request.model_copy(update={"json_schema": json_schema_for(schema)})
    completion = await backend.complete(req)
    try:
        value = schema.model_validate(json.loads(completion.text, strict=False))
        return StructuredResult[schema](value=value, parsed=True, completion=completion)
    except (json.JSONDecodeError, ValidationError) as exc:
        log.warning("structured output did not validate against %s: %s", schema.__name__, exc)
        return StructuredResult[schema](
            value=default, parsed=False, completion=completion, error=str(exc)
        )
