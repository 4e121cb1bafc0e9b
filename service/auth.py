"""Bearer tokens -> principals: static tokens known by their SHA-256, and signed JWTs.

Static tokens are configured as SHA-256 hex digests only. To authenticate, the offered
token is hashed and compared with EVERY configured digest using
:func:`hmac.compare_digest`, without stopping at the first match. Why a full scan and not
a dict lookup on the digest: the time taken then depends only on the number of configured
tokens, never on the offered token or on which entry matched, and there is no reasoning
about hash-table timing to be done at all; deployments configure tens of tokens, so the
scan costs microseconds. (A dict lookup would also be safe - it can leak at most
something about the SHA-256 of a guess, which is useless to an attacker - but the scan
needs no such argument.)

JWTs are verified with the identity provider's public keys only (RS*/PS*/ES*; ``none``
and HMAC algorithms are refused whatever the token's header says), with ``exp``, ``iss``
and ``aud`` required and checked. Roles and systems come from configurable claims;
entries outside the vocabulary are dropped.

Nothing in an error here echoes the token or a claim value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from common.vocabulary import EVERY_SYSTEM, Role, parse
from policies.controls import has_refused_character
from policies.principal import Principal
from service.errors import Unauthenticated
from service.registry import SYSTEMS
from service.secret import Secret
from service.settings import JWT_ALGORITHMS, JwtSettings, TokenEntry

# the token: visible ASCII only (RFC 6750's b64token is a subset); anything else - a
# non-UTF-8 byte, a control character - is a malformed header, not an unknown token
_BEARER = re.compile(r"Bearer[ \t]+([\x21-\x7e]+)[ \t]*", re.IGNORECASE)
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_TOKEN_CHARS = 8192
_MAX_NAME_CHARS = 256


def hash_token(token: str) -> str:
    """The SHA-256 (lowercase hex) of a token, as configured in ``auth.tokens[].sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or raises 401."""

    def __init__(
        self,
        tokens: Sequence[TokenEntry],
        jwt: JwtSettings | None = None,
        *,
        systems: Iterable[str] = SYSTEMS,
    ) -> None:
        """``systems``: the names a principal's scope may hold (besides ``*``)."""
        self._systems = frozenset({*systems, EVERY_SYSTEM})
        self._tokens = tuple(
            (
                entry.sha256.lower().encode("ascii"),
                Principal(entry.name, _roles(entry.roles), entry.systems & self._systems),
            )
            for entry in tokens
        )
        self._jwt = jwt
        self._keys: tuple[tuple[str, Any], ...] = ()
        if jwt is not None:
            self._keys = tuple(_load_key(pem) for pem in jwt.public_keys)
            bad = sorted(set(jwt.algorithms) - JWT_ALGORITHMS)
            if bad:
                raise ValueError(f"JWT algorithms not allowed: {', '.join(bad)}")

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("an Authorization: Bearer token is required")
        match = _BEARER.fullmatch(authorization)
        if match is None or len(match.group(1)) > _MAX_TOKEN_CHARS:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        token = match.group(1)
        found = self._static(token)
        if found is not None:
            return found
        if self._jwt is not None and _JWT_SHAPE.fullmatch(token):
            return self._verify_jwt(token, self._jwt)
        raise Unauthenticated("unknown token")

    def _static(self, token: str) -> Principal | None:
        digest = hash_token(token).encode("ascii")
        found: Principal | None = None
        for known, principal in self._tokens:  # every entry, no early exit (see module doc)
            if hmac.compare_digest(digest, known):
                found = principal
        return found

    def _verify_jwt(self, token: str, settings: JwtSettings) -> Principal:
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in settings.algorithms:
            raise Unauthenticated("token algorithm not accepted")
        family = "EC" if alg.startswith("ES") else "RSA"
        keys = [key for kind, key in self._keys if kind == family]
        claims: dict[str, Any] | None = None
        expired = False
        for key in keys:
            try:
                claims = pyjwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=settings.audience,
                    issuer=settings.issuer,
                    leeway=settings.leeway_seconds,
                    options={"require": _required_claims(settings)},
                )
                break
            except pyjwt.ExpiredSignatureError:
                expired = True  # the signature was good: the token is simply too old
            except pyjwt.PyJWTError:
                continue
        if claims is None:
            raise Unauthenticated("token expired" if expired else "token not accepted")
        name = claims.get(settings.name_claim)
        # the name becomes the audit actor: bounded, and without control characters
        if (
            not isinstance(name, str)
            or not name.strip()
            or len(name) > _MAX_NAME_CHARS
            or has_refused_character(name)
        ):
            raise Unauthenticated(f"token has no usable {settings.name_claim!r} claim")
        return Principal(
            name=name.strip(),
            roles=_roles(_names(claims.get(settings.roles_claim))),
            systems=_names(claims.get(settings.systems_claim)) & self._systems,
        )


def _required_claims(settings: JwtSettings) -> list[str]:
    required = ["exp", settings.name_claim]
    if settings.issuer is not None:
        required.append("iss")
    if settings.audience is not None:
        required.append("aud")
    return required


def _load_key(pem: Secret | str) -> tuple[str, Any]:
    text = pem.reveal() if isinstance(pem, Secret) else pem
    key = load_pem_public_key(text.encode("utf-8"))
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key
    raise ValueError("only RSA and EC public keys are supported for JWT")


def _names(value: object) -> frozenset[str]:
    """A claim as a set of names: a list of strings or a space-separated string."""
    items: Iterable[object]
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return frozenset()
    return frozenset(v for v in items if isinstance(v, str))


def _roles(names: Iterable[str]) -> frozenset[Role]:
    """The roles among ``names``; anything outside the vocabulary is dropped."""
    found = (parse(Role, name) for name in names)
    return frozenset(role for role in found if role is not None)
