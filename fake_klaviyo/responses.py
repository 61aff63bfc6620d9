"""What the fake answers with: JSON encoded as Klaviyo sends it, and Klaviyo's error documents."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "application/vnd.api+json"

# json.dumps makes an encoder per call; documents hold no cycles, so skip checking for them.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A refusal, raised wherever a request is found wanting and answered as Klaviyo's ``errors`` document."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        parameter: str | None = None,
        pointer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.source = {"parameter": parameter} if parameter else {"pointer": pointer} if pointer else {}
        self.headers = dict(headers or {})

    def response(self) -> Response:
        err = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": self.source,
        }
        return Response(self.status, dumps({"errors": [err]}), self.headers)


def invalid(detail: str, parameter: str | None) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, parameter=parameter)
