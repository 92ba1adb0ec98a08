"""The HTTP API's errors: OpenAI's JSON error object, with the status and headers each deserves."""

from __future__ import annotations

import json

from rag.api_errors import ApiError


def test_an_error_is_openais_error_object_with_its_status_headers_and_extra_fields() -> None:
    error = ApiError(
        503, "The model is not running: start it.", "server_error", "model_unavailable", {"Retry-After": "10"},
        {"conversation": "c-1"},
    )  # fmt: skip
    assert str(error) == "The model is not running: start it."
    body = {
        "error": {
            "message": "The model is not running: start it.",
            "type": "server_error",
            "code": "model_unavailable",
            "conversation": "c-1",
        }
    }
    assert error.body() == body
    response = error.response()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(bytes(response.body)) == body


def test_by_default_an_error_is_the_clients_to_fix_and_has_no_code() -> None:
    error = ApiError(400, "The question is empty: send some text.")
    assert error.body() == {
        "error": {"message": "The question is empty: send some text.", "type": "invalid_request_error", "code": None}
    }
    assert "retry-after" not in error.response().headers
