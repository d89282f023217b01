"""Hash, tokenise and detokenise PII values: engine-free (plain Python on ``str``), so the
Polars transforms and a Spark UDF call the very same functions.

- ``hash_value``: ``h_`` + hex HMAC-SHA256 of the UTF-8 value keyed with the tenant's salt.
  Deterministic per tenant (joins across tables still work), not reversible, different
  between tenants.
- ``tokenise``: ``tok_`` + URL-safe base64 (no padding) of AES-SIV(key, UTF-8 value).
  AES-SIV is deterministic authenticated encryption (RFC 5297): the same value gives the
  same token under one key, and only the key turns it back (``detokenise``); a token
  altered or made with another key is refused.
- ``redact_spans``: each span ``find_pii_spans`` reports replaced by ``<EMAIL>``,
  ``<PHONE>``, ``<CARD>``, ``<IBAN>``, ``<IP>``, ``<NATIONAL_ID>`` (``<PERSON>``,
  ``<ADDRESS>`` where the detector reports them).

Keys: ``DATRIX_PII_SALT`` (any non-empty bytes) and ``DATRIX_TOKEN_KEY`` (32, 48 or 64
bytes: AES-SIV-256/384/512) come from settings; the caller passes them. A missing or
malformed key is a ValueError, never a default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

HASH_PREFIX = "h_"
TOKEN_PREFIX = "tok_"
TOKEN_KEY_SIZES = (32, 48, 64)


def check_salt(salt: bytes | None) -> bytes:
    if not salt:
        raise ValueError("pii.hash needs the tenant's salt (DATRIX_PII_SALT); none is set")
    return salt


def check_token_key(key: bytes | None) -> bytes:
    if not key:
        raise ValueError(
            "pii.tokenise needs the tenant's token key (DATRIX_TOKEN_KEY); none is set"
        )
    if len(key) not in TOKEN_KEY_SIZES:
        raise ValueError(
            f"the token key must be 32, 48 or 64 bytes (AES-SIV), not {len(key)} bytes"
        )
    return key


def hash_value(value: str, salt: bytes) -> str:
    """``h_`` + HMAC-SHA256(salt, value) in hex."""
    digest = hmac.new(check_salt(salt), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


@lru_cache(maxsize=8)
def _cipher(key: bytes) -> AESSIV:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    return AESSIV(check_token_key(key))


def tokenise(value: str, key: bytes) -> str:
    """``tok_`` + URL-safe base64 (unpadded) of AES-SIV(key, value): deterministic."""
    sealed = _cipher(check_token_key(key)).encrypt(value.encode("utf-8"), None)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def detokenise(token: str, key: bytes) -> str:
    """The value ``tokenise`` made ``token`` from; ValueError for a token that is not one
    or was made with another key."""
    from cryptography.exceptions import InvalidTag

    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not a token (no {TOKEN_PREFIX!r} prefix)")
    body = token[len(TOKEN_PREFIX) :]
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as e:
        raise ValueError("not a token (bad base64)") from e
    try:
        return _cipher(check_token_key(key)).decrypt(sealed, None).decode("utf-8")
    except InvalidTag as e:
        raise ValueError("the token was not made with this key (or was altered)") from e


def placeholder(kind: str) -> str:
    """``<EMAIL>`` for ``email``, ``<NATIONAL_ID>`` for ``national_id``."""
    return f"<{kind.upper()}>"


@lru_cache(maxsize=1)
def redaction_markers() -> frozenset[str]:
    """Every value a PII redaction writes: ``base.REDACTED`` (``pii.redact``, the whole
    value) and the placeholder of each kind the per-value detector reports
    (``pii.redact_spans``: ``<EMAIL>``, ``<PHONE>``, ...). A column holding nothing else is
    the intended outcome of a fix, which the scan does not report as a constant column."""
    from datrix.jobs.quality.pii import SPAN_KINDS
    from datrix.jobs.transforms.base import REDACTED

    return frozenset({REDACTED, *(placeholder(kind) for kind in SPAN_KINDS)})


def redact_spans(value: str) -> str:
    """``value`` with every PII span the per-value detector finds replaced by its kind's
    placeholder (the value itself when none is found)."""
    from datrix.jobs.quality.pii import find_pii_spans

    spans = sorted(find_pii_spans(value), key=lambda s: (s.start, -s.end))
    if not spans:
        return value
    out: list[str] = []
    at = 0
    for span in spans:
        if span.start < at:  # overlaps one already replaced
            continue
        out.append(value[at : span.start])
        out.append(placeholder(span.kind))
        at = span.end
    out.append(value[at:])
    return "".join(out)
