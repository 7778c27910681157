"""Byte limits on request bodies, enforced while the bytes arrive, never after.

Two layers: :class:`BodyLimit` bounds the whole HTTP body (declared or streamed, chunked
included) before any parser spools it, and :func:`read_upload` enforces the exact limit on
the image part of a multipart form.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imsearch.errors import EmptyImage, ImageTooLarge

_CHUNK = 1 << 20


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes; stops reading (and raises) as soon as ``max_bytes`` is exceeded."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(f"the upload exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if size == 0:
        raise EmptyImage("the uploaded image is empty (0 bytes)")
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` gets a 413 ``image_too_large``.

    ``announced`` is the limit named in the error (the image limit, without the room left
    for the multipart framing around it).

    A declared ``Content-Length`` over the limit is refused before a byte is read. A body
    without one (chunked) is counted as it streams; past the limit the app's receive fails,
    and whatever the app would answer is replaced by the 413 — so the multipart parser never
    spools more than ``max_bytes`` to memory or disk.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, announced: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.announced = announced or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        state: dict[str, Any] = {"size": 0, "over": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["size"] += len(message.get("body", b""))
                if state["size"] > self.max_bytes:
                    state["over"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # the app's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # Frameworks may wrap the receive failure (task groups): any error after the
            # limit was crossed is that failure.
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": ImageTooLarge.code,
                    "message": f"the upload exceeds the limit of {self.announced} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
