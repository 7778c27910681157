"""Domain errors → HTTP: every error leaves as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from imsearch import errors as E

log = logging.getLogger(__name__)

#: Most specific class first: the first match wins.
STATUS_BY_ERROR: tuple[tuple[type[E.ImsearchError], int], ...] = (
    (E.ImageTooLarge, 413),
    (E.UnsupportedImageFormat, 415),
    (E.InvalidImage, 400),
    (E.ModelMismatch, 409),
    (E.UnknownId, 404),
    (E.UnknownCollection, 404),
    (E.CollectionExists, 409),
    (E.InvalidId, 400),
    (E.InvalidCollectionName, 400),
    (E.IndexNotReady, 503),
    (E.DataDirLocked, 503),
    (E.DimensionMismatch, 400),
    (E.ConfigError, 400),
    (E.DatasetError, 400),
    (E.ModelError, 500),
    (E.DependencyUnavailable, 503),
    (E.Unauthorized, 401),
    (E.Forbidden, 403),
    (E.RateLimited, 429),
    (E.UnsupportedMediaType, 415),
)


def status_for(exc: E.ImsearchError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _allowed_methods(request: Request) -> set[str]:
    """The methods of every route whose path matches this request's."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        methods = getattr(route, "methods", None)
        if match != Match.NONE and methods:
            allowed |= set(methods)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to the one JSON shape."""

    @app.exception_handler(E.ImsearchError)
    async def _domain(_: Request, exc: E.ImsearchError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()
        )
        return JSONResponse(error_body("validation_error", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the resource, not only the first route's.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal server error"), 500)
