"""What a ``multipart/form-data`` upload says, without its files' bytes.

OpenAI's audio transcriptions and translations are uploads: a form of plain fields (``model``,
``language``, ``response_format``, ...) and a file. The span records the fields as sent and,
for each file, its name, media type and size, never its bytes.

The httpx and httpx2 clients build such a request as an unread stream of fields, so the
fields are read from the stream's own objects (their data fields' values, their files' names,
headers and lengths) without reading any file; a file object's position is left as it was.
A body already in memory is parsed with the standard library's MIME parser instead.
"""

from __future__ import annotations

import hashlib
import os
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

__all__ = ["form_of_body", "form_of_stream"]


def _add(form: dict[str, Any], name: str, value: Any) -> None:
    """Add a field; a name sent more than once (``timestamp_granularities[]``) gets a list."""
    if name in form:
        known = form[name]
        form[name] = [*known, value] if isinstance(known, list) else [known, value]
    else:
        form[name] = value


def _size(file: Any) -> int | None:
    """The size of a file's content, without reading it."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        return len(file)
    if isinstance(file, str):
        return len(file.encode())
    try:
        return int(os.fstat(file.fileno()).st_size - file.tell())
    except (AttributeError, OSError, ValueError):
        pass
    try:
        position = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(position)
        return int(end - position)
    except (AttributeError, OSError, ValueError):
        return None


def form_of_stream(stream: Any) -> dict[str, Any] | None:
    """The fields of an httpx (or httpx2) ``MultipartStream``, files described; ``None`` when
    ``stream`` is not one."""
    fields = getattr(stream, "fields", None)
    if not isinstance(fields, list) or not hasattr(stream, "boundary"):
        return None
    form: dict[str, Any] = {}
    for field in fields:
        name = getattr(field, "name", None)
        if not isinstance(name, str):
            continue
        if hasattr(field, "filename"):
            headers = getattr(field, "headers", None) or {}
            _add(
                form,
                name,
                {
                    "filename": field.filename,
                    "content_type": headers.get("Content-Type"),
                    "size": _size(getattr(field, "file", None)),
                },
            )
        else:
            value = getattr(field, "value", None)
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            _add(form, name, value)
    return form


def form_of_body(content_type: str, body: bytes, *, digest: bool = False) -> dict[str, Any] | None:
    """The fields of a ``multipart/form-data`` body already in memory, files described (with
    ``digest``, also by the SHA-256 of their bytes); ``None`` when it is not one."""
    if "multipart/form-data" not in content_type.lower():
        return None
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            content = part.get_content_type() if part.get("content-type") else None
            described = {"filename": filename, "content_type": content, "size": len(payload)}
            if digest:
                described["sha256"] = hashlib.sha256(payload).hexdigest()
            _add(form, name, described)
        else:
            _add(form, name, payload.decode("utf-8", errors="replace"))
    return form
