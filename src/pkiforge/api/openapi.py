"""The OpenAPI document, made to say what the server answers.

Every route gets the error answers it can give, as `Problem` bodies: the ones any request can
meet (413, 500, 503), 422 where FastAPI validates parameters or a body, and 401/403/429 where a
dependency authenticates the caller. Routers add the ones their resources give (`responses=`
on the `APIRouter`, built with `problems.responses`). The document is built from the app's
configuration: the profiles a request may name are the ones this server has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from pkiforge.api import problems
from pkiforge.api.callers import enrolling_caller
from pkiforge.api.deps import service_identity
from pkiforge.api.signed import authenticated_actor

ANY_REQUEST = (413, 500, 503)  # BodyLimit, an unexpected error, the store or the sync down
VALIDATED = (422,)  # RequestValidationError, for routes with parameters or a body
AUTHENTICATED = (401, 403, 429)  # no identity, not allowed, rate limit or failed-auth block
AUTHENTICATING: tuple[Callable[..., Any], ...] = (
    service_identity,
    authenticated_actor,
    enrolling_caller,
)


def document(app: FastAPI, routes: Sequence[APIRoute], profiles: Iterable[str]) -> None:
    """Make `app.openapi()` the server's truth: error answers, `Problem`, the profiles.

    `routes` are the app's API routes as their routers hold them (the path has the prefix).
    """
    build = app.openapi
    names = sorted(profiles)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            finish(build(), routes, names)
        return build()

    app.openapi = openapi  # type: ignore[method-assign]


def finish(document: dict[str, Any], routes: Sequence[APIRoute], profiles: list[str]) -> None:
    """Complete a document FastAPI built from these routes."""
    for route in routes:
        if not route.include_in_schema:
            continue
        operations = document["paths"][route.path_format]
        for method in route.methods or ():
            answers = operations[method.lower()]["responses"]
            for status, response in problems.responses(*statuses(route)).items():
                if problems.PROBLEM not in answers.get(str(status), {}).get("content", {}):
                    answers[str(status)] = response  # FastAPI's 422 body is not what we send
            operations[method.lower()]["responses"] = dict(sorted(answers.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, not ours
        schemas.pop(name, None)
    problem = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    profile = schemas["CertificateRequest"]["properties"]["profile"]
    for branch in profile.get("anyOf", [profile]):  # a name, or null for the default
        if branch.get("type") == "string":
            branch["enum"] = profiles


def statuses(route: APIRoute) -> list[int]:
    """The error statuses a route can answer whatever its router adds.

    422 goes exactly where FastAPI documents its validation error (its test: parameters or a
    body), and replaces FastAPI's body with ours.
    """
    found = list(ANY_REQUEST)
    if get_flat_params(route.dependant) or route.body_field is not None:
        found += VALIDATED
    if any(d.call in AUTHENTICATING for d in _dependencies(route.dependant)):
        found += AUTHENTICATED
    return found


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)
