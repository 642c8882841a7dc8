"""The service's error answers: one exception for a refusal, and the bodies each dialect reads.

A handler raises :class:`HTTPError`; the documents family answers it with
:func:`~prism_core.serving.dialects.cohere.error_body` (Cohere's ``message``, FastAPI's
``detail``, vLLM's ``object``/``type``/``code``), TEI's route with TEI's ``error``/``error_type``.
A validation error is answered 422 naming each bad field, without the offending input.

Example:
    >>> error = {"loc": ("top_n",), "msg": "bad", "type": "int_type", "input": 3}
    >>> response = invalid_response([error], ("body",))
    >>> response.status_code, response.body
    (422, b'{"message":"body.top_n: bad",...}')
"""

from __future__ import annotations

from typing import Any

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi.responses import JSONResponse  # noqa: E402

from prism_core.serving.dialects.cohere import error_body  # noqa: E402
from prism_core.serving.dialects.tei import tei_error  # noqa: E402


class HTTPError(Exception):
    """A refusal: its status, message, headers and (optionally) FastAPI-style ``detail``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.detail = detail


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None
) -> JSONResponse:
    """The documents family's error answer."""
    return JSONResponse(error_body(status, message, detail), status_code=status, headers=headers)


def tei_error_response(error: HTTPError) -> JSONResponse:
    """TEI's error answer for ``error``."""
    return JSONResponse(
        tei_error(error.status, error.message), status_code=error.status, headers=error.headers
    )


def invalid_response(errors: Any, prefix: tuple[str, ...] = (), tei: bool = False) -> JSONResponse:
    """The 422 answer to a validation error: each error cleaned (``prefix`` put before its location)
    and one message naming every bad field (TEI's shape when ``tei``)."""
    detail = [clean_error({**e, "loc": (*prefix, *e["loc"])}) for e in errors]
    message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in detail)
    body = tei_error(422, message) if tei else {**error_body(422, message), "detail": detail}
    return JSONResponse(body, status_code=422)


def clean_error(error: Any) -> dict[str, Any]:
    """A validation error without the offending input (it may be huge, or not encodable as UTF-8)."""
    loc, msg, kind = list(error.get("loc", ())), str(error.get("msg", "")), str(error.get("type", ""))
    if kind == "json_invalid":  # FastAPI puts the character position where a field name would be
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error")
        loc, msg = ["body"], f"invalid JSON at character {position}" + (f": {reason}" if reason else "")
    return {"loc": loc, "msg": msg, "type": kind}
