"""The REST routes' class: request bodies read as strict JSON (app/core/strict_json.py)."""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.core import strict_json


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            charset = strict_json.charset(self.headers.get("content-type", ""))
            if charset not in (None, "utf-8"):
                raise strict_json.NotJSONError(f"a JSON body is UTF-8, not {charset[:40]}")
            try:
                self._json = strict_json.loads(await self.body())
            except json.JSONDecodeError:
                raise
            except UnicodeDecodeError:
                raise strict_json.NotJSONError("the body is not UTF-8") from None
            except RecursionError:
                raise strict_json.NotJSONError("the body is nested too deeply") from None
            except ValueError:
                # A number past the digits the interpreter converts (4300).
                raise strict_json.NotJSONError("a number in the body is too long") from None
        return self._json


class JSONRoute(APIRoute):
    """A route whose body is read as strict JSON (app/core/strict_json.py): FastAPI
    answers what that refuses as the invalid JSON it is (422, `json_invalid`), as every
    other malformed body (not UTF-8, nested too deeply, a number too long)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_strictly(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return handle_strictly
