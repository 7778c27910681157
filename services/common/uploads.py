"""Reading uploads with a byte limit enforced while reading, not after."""

from __future__ import annotations

from fastapi import UploadFile

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
