"""Every route's OpenAPI declares the error answers it can give, with the body the shell
really sends (401, 403, 404, 409, 422), and the real answers match the declared model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from services.planning.app import create_app
from services.planning.settings import PlanningSettings
from shared.auth import Principal, require
from shared.errors import DomainError, NotFound
from shared.http import create_service_app
from shared.metrics import ServiceMetrics
from shared.openapi import ErrorResponse
from shared.settings import TokenGrant

REF = {"$ref": "#/components/schemas/ErrorResponse"}


@asynccontextmanager
async def _nothing(_app: FastAPI) -> AsyncIterator[None]:
    yield


class Thing(BaseModel):
    amount: int


def _app() -> FastAPI:
    app = create_service_app(
        service="errs",
        title="errs",
        lifespan=_nothing,
        metrics=ServiceMetrics("errs"),
        tokens={
            "t-admin": TokenGrant(subject="a", role="admin"),
            "t-v": TokenGrant(subject="v", role="viewer"),
        },
    )
    router = APIRouter(prefix="/api/v1")

    @router.post("/things/{thing_id}")
    def change(thing_id: str, body: Thing, _: Principal = Depends(require("admin"))) -> Thing:
        if thing_id == "missing":
            raise NotFound("thing", thing_id)
        if body.amount > 10:
            raise DomainError("too much", field="amount", context={"available": "10"})
        return body

    @router.get("/open")
    def open_() -> dict[str, str]:
        return {}

    app.include_router(router)
    return app


def _schema(document: dict, path: str, method: str, status: int) -> dict:  # type: ignore[type-arg]
    return document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]


def test_errors_are_declared_from_what_the_operation_is() -> None:
    document = _app().openapi()
    responses = document["paths"]["/api/v1/things/{thing_id}"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(responses)
    for status in (401, 403, 404, 409, 422):
        content = _schema(document, "/api/v1/things/{thing_id}", "post", status)
        assert content["schema"] == REF
        ErrorResponse.model_validate(content["example"])  # the example is a valid body
    assert set(document["paths"]["/api/v1/open"]["get"]["responses"]) == {"200"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["ErrorResponse"]["required"]) == {"detail"}


async def test_real_error_answers_match_the_declared_model() -> None:
    app = _app()
    admin = {"Authorization": "Bearer t-admin"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answers = {
            401: await c.post("/api/v1/things/a", json={"amount": 1}),
            403: await c.post(
                "/api/v1/things/a", json={"amount": 1}, headers={"Authorization": "Bearer t-v"}
            ),
            404: await c.post("/api/v1/things/missing", json={"amount": 1}, headers=admin),
            409: await c.post("/api/v1/things/a", json={"amount": 11}, headers=admin),
            422: await c.post("/api/v1/things/a", json={"amount": "x"}, headers=admin),
        }
        unknown_path = await c.get("/nowhere")
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        ErrorResponse.model_validate(answer.json())
    assert answers[409].json()["detail"][0]["ctx"] == {"available": "10"}
    assert answers[422].json()["detail"][0]["field"] == "amount"
    assert unknown_path.status_code == 404
    assert unknown_path.json() == {
        "detail": [{"loc": [], "field": None, "msg": "Not Found", "type": "http"}]
    }


@pytest.fixture(scope="module")
def planning_openapi(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    path = tmp_path_factory.mktemp("openapi")
    settings = PlanningSettings(
        database_url=f"sqlite:///{path / 'p.db'}", kafka_bootstrap="127.0.0.1:1", data_dir=path
    )
    return create_app(settings).openapi()


def test_every_planning_route_declares_its_errors(planning_openapi: dict) -> None:  # type: ignore[type-arg]
    checked = 0
    for path, item in planning_openapi["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("security"):
                checked += 1
                for status in ("401", "403"):
                    assert responses[status]["content"]["application/json"]["schema"] == REF
                if method in {"post", "put", "patch", "delete"}:
                    assert "409" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
    assert checked > 20
