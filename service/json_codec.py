"""JSON on the request path, written and read with orjson where it gives the same values.

orjson is several times faster than the standard library's ``json``; it is used where the
gateway produces JSON (its answers, the bodies it sends upstream) and where it reads an
upstream's answer, and it falls back to ``json`` wherever the two would differ:

* writing: orjson refuses an integer beyond 64 bits and a dict key that is not a ``str``
  (``json`` writes both); it writes NaN as ``null``, but no NaN reaches an answer (the
  gateway refuses it in every JSON it reads). Its text is UTF-8 without ``\\u`` escapes
  and without spaces: the same values for any JSON reader.
* reading: orjson reads an integer beyond 64 bits as a float (``json`` as an ``int``),
  so a body with a run of 19 or more digits is read by ``json`` (a record must be passed
  on as it was read). NaN and the infinities are refused by both.

A request's own body is not read here: it must be refused when an object names a
member twice, which orjson cannot tell (``service.routes.common.parse_json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn

import orjson
from aiohttp import web

#: every digit as ``0``: a run of 19 of them in the result is a run of 19 digits
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN: Final = b"0" * 19


def has_long_digits(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 or more digits: an integer orjson may read as a
    float. (A translation and a substring search: several times faster than the regular
    expression ``[0-9]{19,}``, which tries a match at every digit.)"""
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def dump_bytes(value: Any) -> bytes:
    """``value`` as JSON (UTF-8)."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value).encode()


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError("not a JSON constant")


def loads_strict(raw: bytes) -> Any:
    """Strict JSON (NaN and Infinity refused): ``ValueError`` for anything else."""
    if not has_long_digits(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json decides (a lone surrogate, say, which json accepts) and raises
    return json.loads(raw, parse_constant=_refuse_constant)


def json_response(
    body: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """``web.json_response`` written with :func:`dump_bytes`."""
    return web.Response(
        body=dump_bytes(body), status=status, headers=headers, content_type=content_type
    )
