"""The error responses every route can give, declared once in each service's OpenAPI.

The HTTP shell (``shared.http``) answers every error with one body shape, ``{"detail": [...]}``
whose items name the location and field (``ErrorResponse``). Rather than repeat ``responses=``
on each of a few hundred routes, ``declare_error_responses`` adds them to the generated
document, operation by operation, from what the operation is:

* 401 and 403: it requires a bearer token (its OpenAPI ``security``);
* 404: its path names a resource (``/plans/{plan_id}``);
* 409: it changes state (POST, PUT, PATCH, DELETE) behind a token: a domain rule refused it;
* 422: it takes parameters or a body (FastAPI's own 422 schema is replaced by the real one).

A response a route declares itself is kept as it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

WRITES = frozenset({"post", "put", "patch", "delete"})
SCHEMA_REF = "#/components/schemas/ErrorResponse"


class ErrorItem(BaseModel):
    """One error: where it is, which field, why."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(
        description="Where the error is: body/query/path/header, then the path to the field."
    )
    field: str | None = Field(
        default=None, description="The offending field as a dotted path (None: the request)."
    )
    msg: str = Field(description="A readable reason.")
    type: str | None = Field(
        default=None,
        description="What kind of error: a validation error type (e.g. `missing`), `domain` "
        "for a rule of the domain, `too_large` for a body past the limit.",
    )
    ctx: dict[str, Any] | None = Field(
        default=None, description="Figures a client can act on (e.g. `available`)."
    )


class ErrorResponse(BaseModel):
    """The body of every 4xx answer."""

    detail: list[ErrorItem]


_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    401: (
        "No bearer token, or one the service does not know.",
        {"loc": ["header", "Authorization"], "msg": "unknown bearer token"},
    ),
    403: (
        "The caller's role may not do this.",
        {
            "loc": ["header", "Authorization"],
            "msg": "role 'viewer' may not do this; needs one of admin, cmo, manager",
        },
    ),
    404: (
        "The resource named in the path does not exist.",
        {"loc": [], "field": None, "msg": "plan 'p-404' not found", "type": "domain"},
    ),
    409: (
        "A rule of the domain refuses the change in the resource's current state.",
        {
            "loc": ["body", "amount"],
            "field": "amount",
            "msg": "the amount exceeds the budget left",
            "type": "domain",
            "ctx": {"available": "1200.00"},
        },
    ),
    422: (
        "A parameter or body field is missing, malformed or out of range.",
        {
            "loc": ["body", "period_end"],
            "field": "period_end",
            "msg": "Input should be a valid date",
            "type": "date_from_datetime_parsing",
        },
    ),
}


def error_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of ``status`` (schema and example)."""
    description, example = _EXAMPLES[status]
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": SCHEMA_REF},
                "example": {"detail": [example]},
            }
        },
    }


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    secured = bool(operation.get("security"))
    statuses = [401, 403] if secured else []
    if "{" in path:
        statuses.append(404)
    if secured and method in WRITES:
        statuses.append(409)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append(422)
    return statuses


def add_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses to every operation of an OpenAPI ``document`` (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorItem, ErrorResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in _statuses(path, method, operation):
                declared = responses.get(str(status))
                if declared is None or _generic(declared):
                    responses[str(status)] = error_response(status)
                elif "content" not in declared:  # a description only: give it the body
                    responses[str(status)] = {**error_response(status), **declared}
    if "HTTPValidationError" not in str(document.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def _generic(response: dict[str, Any]) -> bool:
    """FastAPI's own 422 (its ``HTTPValidationError``, not the body the shell answers)."""
    return "HTTPValidationError" in str(response.get("content", ""))


def declare_error_responses(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare the error responses (built once, on demand)."""

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()  # FastAPI's document, cached on the app
        if fresh:
            add_error_responses(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
