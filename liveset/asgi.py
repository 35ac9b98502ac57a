"""create_app: Socket.IO at /socket.io/ beside the Starlette REST side, one lifespan."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import socketio
from starlette.applications import Starlette

from liveset import web_app
from liveset.lifespan import lifespan
from realtime.core import logs
from realtime.core.auth import TokenVerifier
from realtime.core.settings import Settings, SettingsError, from_env
from realtime.handlers.namespace import Namespace
from realtime.handlers.rooms import RoomHandlers
from realtime.handlers.workouts import WorkoutHandlers
from realtime.live.services import Services
from realtime.transport.asgi_release import ReleaseOnEnd
from realtime.transport.edge import STATE_KEY, Edge
from realtime.transport.polling_errors import PollingErrors
from rest.app import create_rest_app


def create_app(settings: Settings | None = None) -> ReleaseOnEnd:
    if settings is None:
        try:
            settings = from_env()
        except SettingsError as exc:
            # Stop at start with the variable's name, not a traceback from deep inside.
            print(f"liveset: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    logs.configure(settings.log_level, settings.log_format)
    services = Services(settings=settings, verifier=TokenVerifier(settings))
    namespace = Namespace(services, {})
    rooms = RoomHandlers(services, namespace.sessions)
    workouts = WorkoutHandlers(services, rooms)
    namespace.add_handlers({**workouts.table(), **rooms.table()})
    namespace.disconnect_hooks.append(rooms.disconnected)

    edge = Edge(namespace.sio)

    @contextlib.asynccontextmanager
    async def app_lifespan(_: Starlette) -> AsyncIterator[dict[str, Edge]]:
        async with lifespan(services, namespace.sio, workouts.load_baseline, rooms, namespace.ready_again,
                            namespace.end_replaced):
            # The lifespan state reaches uvicorn's HTTP protocol, which hands websockets to the edge.
            yield {STATE_KEY: edge}

    rest = create_rest_app(services, app_lifespan)
    if settings.web_app:
        rest.router.routes.append(web_app.mount())
    engineio = socketio.ASGIApp(namespace.sio, other_asgi_app=rest, socketio_path="socket.io")
    polling = PollingErrors(engineio, max_body=settings.max_message_bytes, sessions=namespace.sio.eio.sockets)
    return ReleaseOnEnd(polling)
