"""An upload's bytes to disk, a chunk at a time: the raw body (``application/octet-stream``)
or the ``file`` part of a ``multipart/form-data`` body, never the whole file in memory.

Both count the file's bytes as they arrive and stop at the size limit (413). The raw body
is written as the server hands it over (uvicorn: the socket's reads, at most 64 KiB, and
it stops reading while a request's unread body passes 64 KiB). A multipart body goes
through python-multipart's streaming parser, fed the same chunks: the ``file`` part's
data is written to the target as each chunk is parsed (Starlette's ``request.form()`` is
not used: it spools a file part into a ``SpooledTemporaryFile`` of the system temp folder,
a second copy on a disk the size limit does not watch); the other parts are small text
fields (``name``, ``filename``, ``encoding``: at most ``FIELD_MAX`` bytes each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from datrix.gateway.api.problems import ApiProblem

FILE_PART = "file"
FIELDS = ("name", "filename", "encoding")
FIELD_MAX = 1000  # bytes of one text field
MULTIPART_SLACK = 64 * 1024  # a multipart body's boundaries and headers, over the file's size
MULTIPART = "multipart/form-data"


def too_large(limit_mb: float) -> ApiProblem:
    return ApiProblem(413, f"the upload is larger than {limit_mb:g} MB (DATRIX_API_MAX_UPLOAD_MB)")


def _bad(detail: str) -> ApiProblem:
    return ApiProblem(422, detail, slug="bad-file")


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith(MULTIPART)


@dataclass
class Received:
    """What an upload delivered: the file's size, and the form's text fields (multipart)
    with the file part's own file name."""

    size: int
    fields: dict[str, str] = field(default_factory=dict)
    part_filename: str | None = None


async def receive_raw(request: Request, target: Path, limit_mb: float) -> Received:
    """The body, written to ``target`` as it streams in."""
    limit = int(limit_mb * 2**20)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit_mb)
    size = 0
    with target.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit_mb)
            await run_in_threadpool(out.write, chunk)
    return Received(size)


class _Form:
    """python-multipart's callbacks: the ``file`` part's data, queued for the writer; the
    text fields, kept (bounded)."""

    def __init__(self, limit: int, limit_mb: float) -> None:
        self.limit, self.limit_mb = limit, limit_mb
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []  # file data of the chunk being parsed
        self.size = 0
        self.files = 0
        self.part_filename: str | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._in_file = False
        self._text = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._in_file = b"", None, False
        self._text = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        if len(self._header_name) > FIELD_MAX:
            raise _bad("multipart: a part's header is too long")

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > FIELD_MAX:
            raise _bad("multipart: a part's header is too long")

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise _bad('multipart: a part has no Content-Disposition "name"')
        name = raw_name.decode("utf-8", "replace")
        if name == FILE_PART:
            self.files += 1
            if self.files > 1:
                raise _bad(f"multipart: send one {FILE_PART!r} part")
            self._in_file = True
            given = options.get(b"filename")
            self.part_filename = given.decode("utf-8", "replace") if given else None
        elif name not in FIELDS:
            raise _bad(
                f"multipart: unknown part {name[:50]!r}; send {FILE_PART!r} and optionally "
                f"{', '.join(map(repr, FIELDS))}"
            )
        elif name in self.fields:
            raise _bad(f"multipart: the field {name!r} is sent twice")
        self._name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.size += end - start
            if self.size > self.limit:
                raise too_large(self.limit_mb)
            self.pending.append(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > FIELD_MAX:
            raise _bad(f"multipart: the field {self._name!r} is longer than {FIELD_MAX} bytes")

    def on_part_end(self) -> None:
        if self._name is not None and not self._in_file:
            try:
                self.fields[self._name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad(f"multipart: the field {self._name!r} is not UTF-8") from None


def _write_all(out: BinaryIO, chunks: list[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)


async def receive_multipart(request: Request, target: Path, limit_mb: float) -> Received:
    """The ``file`` part of a multipart body, written to ``target`` as it streams in; the
    text fields beside it."""
    limit = int(limit_mb * 2**20)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise too_large(limit_mb)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise _bad("multipart/form-data without a boundary")
    form = _Form(limit, limit_mb)
    parser = MultipartParser(boundary, form.callbacks())
    with target.open("wb") as out:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise _bad(f"not a valid multipart/form-data body: {exc}") from None
            if form.pending:
                chunks, form.pending = form.pending, []
                await run_in_threadpool(_write_all, out, chunks)
    try:
        parser.finalize()
    except MultipartParseError as exc:
        raise _bad(f"not a valid multipart/form-data body: {exc}") from None
    if form.files == 0:
        raise _bad(f"multipart: no {FILE_PART!r} part (the file)")
    return Received(form.size, form.fields, form.part_filename)
