from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from common.vocabulary import Role
from policies.principal import Principal
from service.access import authorize
from service.auth import Authenticator, hash_token
from service.errors import Forbidden, Unauthenticated
from service.settings import JwtSettings, TokenEntry

ALL = frozenset({"timelog", "billbee", "sedona", "keycom"})
ISSUER, AUDIENCE = "https://idp.example", "gdpr-gateway"


def entry(token: str, name: str, roles: set[str], systems: frozenset[str] = ALL) -> TokenEntry:
    return TokenEntry(name=name, roles=frozenset(roles), systems=systems, sha256=hash_token(token))


TOKENS = [
    entry("tok-editor-1", "crm", {"editor"}, frozenset({"billbee"})),
    entry("tok-auditor-2", "audit-team", {"auditor"}),
]


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("demo-editor") == (
        "c43c54b6f506a7fa1c287a1d2deb867567d55a567d82dd6de995615208a94793"
    )


def test_static_tokens_map_to_principals() -> None:
    auth = Authenticator(TOKENS)
    p = auth.authenticate("Bearer tok-editor-1")
    assert p == Principal("crm", frozenset({"editor"}), frozenset({"billbee"}))
    assert auth.authenticate("bearer   tok-auditor-2").name == "audit-team"


def test_uppercase_configured_digest_still_matches() -> None:
    upper = TokenEntry("ops", frozenset({"admin"}), ALL, hash_token("t-ops").upper())
    assert Authenticator([upper]).authenticate("Bearer t-ops").name == "ops"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dG9rLWVkaXRvci0xOg==", "tok-editor-1",
     "Bearer tok-editor-1 extra", "Bearer tok-editor-", "Bearer TOK-EDITOR-1",
     "Bearer " + "x" * 10000],
)
def test_missing_malformed_and_wrong_tokens_are_401(header: str | None) -> None:
    with pytest.raises(Unauthenticated) as err:
        Authenticator(TOKENS).authenticate(header)
    assert err.value.status == 401 and err.value.code == "unauthenticated"
    if header:
        assert "tok-" not in err.value.detail.lower()
        assert "dG9r" not in err.value.detail


def test_unknown_roles_and_systems_in_entries_are_dropped() -> None:
    odd = TokenEntry("x", frozenset({"editor", "root"}), frozenset({"billbee", "mars"}),
                     hash_token("odd"))
    p = Authenticator([odd]).authenticate("Bearer odd")
    assert p.roles == frozenset({"editor"}) and p.systems == frozenset({"billbee"})


def test_roles_and_system_scope_are_checked_by_access() -> None:
    """The one authorisation function (service.access); the authenticator only maps
    tokens to principals."""
    p = Principal("crm", frozenset({Role.EDITOR}), frozenset({"billbee"}))
    authorize(p, frozenset({Role.EDITOR, Role.ADMIN}), "billbee")
    with pytest.raises(Forbidden) as err:
        authorize(p, frozenset({Role.AUDITOR, Role.PRIVACY_OFFICER}))
    assert err.value.status == 403 and err.value.code == "forbidden"
    with pytest.raises(Forbidden):
        authorize(p, frozenset({Role.EDITOR}), "sedona")
    ops = Principal("ops", frozenset({Role.EDITOR}), frozenset({"*"}))
    authorize(ops, frozenset({Role.EDITOR}), "sedona")


# -- JWT -----------------------------------------------------------------------------


def pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwt_auth(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Authenticator:
    settings = JwtSettings(
        public_keys=(pem(rsa_key), pem(ec_key)), issuer=ISSUER, audience=AUDIENCE,
        leeway_seconds=5,
    )
    return Authenticator(TOKENS, settings)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "svc-crm", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300,
        "roles": ["editor", "auditor"], "systems": ["billbee", "sedona"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_rs256_token(jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    p = jwt_auth.authenticate(f"Bearer {token}")
    assert p == Principal("svc-crm", frozenset({"editor", "auditor"}),
                          frozenset({"billbee", "sedona"}))


def test_es256_token_with_string_claims(
    jwt_auth: Authenticator, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.encode(claims(roles="privacy_officer god", systems="keycom"), ec_key,
                       algorithm="ES256")
    p = jwt_auth.authenticate(f"Bearer {token}")
    assert p.roles == frozenset({"privacy_officer"})  # "god" dropped
    assert p.systems == frozenset({"keycom"})


def test_unknown_roles_dropped_and_missing_claims_give_nothing(
    jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(roles=["superuser", 3], systems=None), rsa_key, algorithm="RS256")
    p = jwt_auth.authenticate(f"Bearer {token}")
    assert p.roles == frozenset() and p.systems == frozenset()


def test_custom_claim_names(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = JwtSettings(public_keys=(pem(rsa_key),), issuer=ISSUER, audience=AUDIENCE,
                           name_claim="client_id", roles_claim="groups", systems_claim="scopes")
    token = jwt.encode(claims(client_id="app-7", groups=["admin"], scopes=["*"]), rsa_key,
                       algorithm="RS256")
    p = Authenticator([], settings).authenticate(f"Bearer {token}")
    assert p == Principal("app-7", frozenset({"admin"}), frozenset({"*"}))


@pytest.mark.parametrize(
    ("over", "detail"),
    [
        ({"exp": int(time.time()) - 3600}, "token expired"),
        ({"aud": "someone-else"}, "token not accepted"),
        ({"iss": "https://evil.example"}, "token not accepted"),
        ({"exp": None}, "token not accepted"),
        ({"aud": None}, "token not accepted"),
        ({"iss": None}, "token not accepted"),
    ],
)
def test_rejected_claims(
    jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey, over: dict[str, Any], detail: str
) -> None:
    token = jwt.encode(claims(**over), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated) as err:
        jwt_auth.authenticate(f"Bearer {token}")
    assert err.value.detail == detail


def test_missing_name_claim_is_refused(jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(sub=None), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated):
        jwt_auth.authenticate(f"Bearer {token}")


def test_token_signed_by_another_key_is_refused(jwt_auth: Authenticator) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), other, algorithm="RS256")
    with pytest.raises(Unauthenticated) as err:
        jwt_auth.authenticate(f"Bearer {token}")
    assert err.value.detail == "token not accepted"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused(jwt_auth: Authenticator) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."
    with pytest.raises(Unauthenticated) as err:
        jwt_auth.authenticate(f"Bearer {token}")
    assert err.value.detail == "token algorithm not accepted"


def test_hs256_signed_with_the_public_key_is_refused(
    jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic confusion attack: HMAC keyed with the (public) PEM text.
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims())}"
    mac = hmac.new(pem(rsa_key).encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(Unauthenticated) as err:
        jwt_auth.authenticate(f"Bearer {token}")
    assert err.value.detail == "token algorithm not accepted"


def test_es256_header_with_rsa_signature_is_refused(
    jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey
) -> None:
    good = jwt.encode(claims(), rsa_key, algorithm="RS256")
    _, body, sig = good.split(".")
    forged = f"{_b64({'alg': 'ES256', 'typ': 'JWT'})}.{body}.{sig}"
    with pytest.raises(Unauthenticated):
        jwt_auth.authenticate(f"Bearer {forged}")


def test_jwt_not_accepted_when_not_configured(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated) as err:
        Authenticator(TOKENS).authenticate(f"Bearer {token}")
    assert err.value.detail == "unknown token"


def test_algorithm_restricted_by_settings(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = JwtSettings(public_keys=(pem(rsa_key),), issuer=ISSUER, audience=AUDIENCE,
                           algorithms=("ES256",))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated):
        Authenticator([], settings).authenticate(f"Bearer {token}")


def test_symmetric_algorithm_in_settings_is_a_construction_error(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    settings = JwtSettings(public_keys=(pem(rsa_key),), issuer=ISSUER, audience=AUDIENCE,
                           algorithms=("HS256",))
    with pytest.raises(ValueError, match="HS256"):
        Authenticator([], settings)


def test_garbage_jwt_shaped_token_is_401(jwt_auth: Authenticator) -> None:
    with pytest.raises(Unauthenticated):
        jwt_auth.authenticate("Bearer aaa.bbb.ccc")


@pytest.mark.parametrize(
    "name", ["svc\x00crm", "svc\x1b[31m", "x" * 257], ids=["nul", "esc", "long"]
)
def test_a_name_claim_that_cannot_be_an_actor_is_refused(
    jwt_auth: Authenticator, rsa_key: rsa.RSAPrivateKey, name: str
) -> None:
    """The name becomes the audit actor: no control characters, bounded (issue 8)."""
    token = jwt.encode(claims(sub=name), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated):
        jwt_auth.authenticate(f"Bearer {token}")


@pytest.mark.parametrize(
    "token", ["d\udce4mo", "dämo", "demo\x01"], ids=["bad_utf8", "latin", "ctl"]
)
def test_a_token_that_is_not_visible_ascii_is_a_malformed_header(token: str) -> None:
    """aiohttp hands non-UTF-8 header bytes over as surrogate escapes: that was a 500."""
    auth = Authenticator([entry("demo-editor", "ed", {"editor"})])
    with pytest.raises(Unauthenticated) as err:
        auth.authenticate(f"Bearer {token}")
    assert err.value.detail == "the Authorization header must be 'Bearer <token>'"
