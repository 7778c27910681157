"""The rules an image id follows, wherever it comes from (an upload, a file's path).

Ids are the names clients show, store and put in URLs, so an id is

* NFC-normalised, so two ids that look the same are the same (``é`` typed either way);
* 1 to 512 characters, at most 1,024 bytes of UTF-8;
* free of control and invisible format characters (``\\n``, NUL, zero-width spaces, bidi
  overrides: the "unicode tricks" that make one id look like another) and of backslashes;
* without surrounding whitespace;
* made of ``/``-separated segments that are neither empty nor ``.`` / ``..``, so an id read as
  a path (``sub/photo_12``) never climbs out of its folder.
"""

from __future__ import annotations

import unicodedata

from imsearch.errors import InvalidId

MAX_ID_CHARS = 512
MAX_ID_BYTES = 1024
#: Control, format, surrogate, private-use characters; line and paragraph separators.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def normalize_id(raw: str) -> str:
    """The id in its canonical form, or :class:`~imsearch.errors.InvalidId` saying why not."""
    image_id = unicodedata.normalize("NFC", raw)
    if not image_id:
        raise InvalidId("an id cannot be empty")
    if (
        len(image_id) > MAX_ID_CHARS
        or len(image_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
    ):
        raise InvalidId(f"an id is at most {MAX_ID_CHARS} characters ({MAX_ID_BYTES} bytes)")
    bad = next((c for c in image_id if unicodedata.category(c) in _FORBIDDEN_CATEGORIES), None)
    if bad is not None:
        raise InvalidId(f"an id cannot contain the invisible or control character U+{ord(bad):04X}")
    if "\\" in image_id:
        raise InvalidId("an id cannot contain a backslash; use / between folders")
    if image_id != image_id.strip():
        raise InvalidId("an id cannot start or end with whitespace")
    if any(part in ("", ".", "..") for part in image_id.split("/")):
        raise InvalidId("an id's /-separated parts cannot be empty, '.' or '..'")
    return image_id
