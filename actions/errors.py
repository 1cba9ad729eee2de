"""JSON error answers for the HubSpot-facing API (an empty body shows in HubSpot as 'no reason')."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An answer other than success, with a reason people can read."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body."""
        return {"status": "error", "message": self.message, **self.details}


def register(app: Flask) -> None:
    """Render every error of the app as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Any:
        return jsonify(error.to_dict()), error.status_code

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        return jsonify({"status": "error", "message": error.description or error.name}), error.code
