"""The emulator's admin HTTP API: fault injection for tests that run the emulator out of process.

Every route needs ``Authorization: Bearer <admin_token>`` (the token is printed when the
emulator starts, random unless given). Bodies are JSON objects; ``session_id`` may be left out
to aim a fault at every session. Replies are JSON: ``{"ok": true, ...}``, or ``{"error": ...}``
with 400 (bad body), 401 (no admin token) or 404 (unknown session).

::

    GET  /_emulator/sessions                      -> {"sessions": [SessionInfo as JSON, ...]}
    POST /_emulator/faults/drop-websocket         {"session_id"?}
    POST /_emulator/faults/fail-peer-connection   {"session_id"?}
    POST /_emulator/faults/freeze-video           {"seconds", "session_id"?}
    POST /_emulator/faults/end-session            {"reason"?, "session_id"?}
    POST /_emulator/faults/delay-acks             {"seconds"}
    POST /_emulator/faults/withhold-acks          {"on"?: true}
    POST /_emulator/faults/reject-next            {"n", "error"?}
    POST /_emulator/faults/queue-next             {"n", "seconds"}
    POST /_emulator/faults/trickle-candidates     {"on"?: true}
    POST /_emulator/faults/clear                  {}
    POST /_emulator/restart                       {}   (answers first, then restarts)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from decart_sync._protocol import (
    CAPACITY_ERROR,
    INSUFFICIENT_CREDITS,
    ProtocolViolation,
    parse_json,
)
from decart_sync.emulator.faults import UnknownSession

if TYPE_CHECKING:
    from decart_sync.emulator.server import EmulatorServer

ADMIN_PREFIX: Final = "/_emulator"

_Handler = Callable[["EmulatorServer", dict[str, Any]], Awaitable[dict[str, Any]]]


class _BadRequest(ValueError):
    pass


def _session_id(body: dict[str, Any]) -> str | None:
    value = body.get("session_id")
    if value is not None and not isinstance(value, str):
        raise _BadRequest(f"session_id must be a string, got {value!r}")
    return value


def _number(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise _BadRequest(f"missing field {name!r}")
    return body[name]


async def _drop_websocket(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": server.drop_websocket(_session_id(body))}


async def _fail_peer_connection(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": await server.fail_peer_connection(_session_id(body))}


async def _freeze_video(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": server.freeze_video(_number(body, "seconds"), _session_id(body))}


async def _end_session(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    reason = body.get("reason", INSUFFICIENT_CREDITS)
    if not isinstance(reason, str) or not reason:
        raise _BadRequest(f"reason must be a non-empty string, got {reason!r}")
    return {"sessions": server.end_session(reason, _session_id(body))}


async def _delay_acks(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.delay_acks(_number(body, "seconds"))
    return {}


def _switch(body: dict[str, Any]) -> bool:
    on = body.get("on", True)
    if not isinstance(on, bool):
        raise _BadRequest(f"on must be true or false, got {on!r}")
    return on


async def _withhold_acks(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.withhold_acks(_switch(body))
    return {}


async def _trickle_candidates(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.trickle_candidates(_switch(body))
    return {}


async def _reject_next(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.reject_next(_number(body, "n"), body.get("error", CAPACITY_ERROR))
    return {}


async def _queue_next(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.queue_next(_number(body, "n"), _number(body, "seconds"))
    return {}


async def _clear(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    server.clear_faults()
    return {}


async def _restart(server: EmulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    # Restarting stops the HTTP server, which waits for this very request: answer first.
    task = asyncio.get_running_loop().create_task(server.restart())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return {"restarting": True}


# Keeps restart tasks referenced until they finish (the loop holds only weak references).
_background: set[asyncio.Task[None]] = set()

_FAULTS: Final[dict[str, _Handler]] = {
    "drop-websocket": _drop_websocket,
    "fail-peer-connection": _fail_peer_connection,
    "freeze-video": _freeze_video,
    "end-session": _end_session,
    "delay-acks": _delay_acks,
    "withhold-acks": _withhold_acks,
    "reject-next": _reject_next,
    "queue-next": _queue_next,
    "trickle-candidates": _trickle_candidates,
    "clear": _clear,
}


def _route(server: EmulatorServer, action: _Handler) -> Callable[[web.Request], Awaitable[Any]]:
    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = parse_json(raw) if raw.strip() else {}
        except ProtocolViolation:
            return web.json_response({"error": "body is not valid JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            result = await action(server, body)
        except UnknownSession as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, **result})

    return handle


def add_admin_routes(app: web.Application, server: EmulatorServer) -> None:
    """Add the admin routes; the server's middleware checks the admin token."""

    async def sessions(request: web.Request) -> web.Response:
        return web.json_response({"sessions": [attrs.asdict(s) for s in server.sessions()]})

    app.router.add_get(f"{ADMIN_PREFIX}/sessions", sessions)
    for name, action in _FAULTS.items():
        app.router.add_post(f"{ADMIN_PREFIX}/faults/{name}", _route(server, action))
    app.router.add_post(f"{ADMIN_PREFIX}/restart", _route(server, _restart))
