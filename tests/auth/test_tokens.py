"""Our JWTs: newest key signs, every listed key verifies, access and refresh never mix."""

from __future__ import annotations

import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from ftl.auth.keyring import KeyRing
from ftl.auth.tokens import Tokens
from ftl.errors import Kind, Refused
from tests.auth.fake_google import b64json, tamper

OLD = ("k-old", "o" * 40)
NEW = ("k-new", "n" * 40)


def tokens(*pairs: tuple[str, str]) -> Tokens:
    return Tokens(KeyRing.of(pairs), access_ttl_s=900, refresh_ttl_s=604_800)


def code_of(tok: Tokens, token: object, kind: str = "access") -> str:
    with pytest.raises(Refused) as info:
        tok.verify(token, kind)  # type: ignore[arg-type]
    assert info.value.kind is Kind.UNAUTHORIZED
    return info.value.code


def test_access_round_trip() -> None:
    tok = tokens(NEW)
    principal = tok.verify_access(tok.issue_access(42))
    assert principal.user_id == 42
    assert principal.expires_at - int(time.time()) in range(895, 901)


def test_refresh_carries_jti_and_family() -> None:
    tok = tokens(NEW)
    family = uuid.uuid4()
    issued = tok.issue_refresh(7, family)
    claims = tok.verify(issued.token, "refresh")
    assert (claims.user_id, claims.jti, claims.family) == (7, str(issued.jti), str(family))


def test_newest_key_signs_and_old_keys_still_verify() -> None:
    before = tokens(OLD)
    issued_before = before.issue_access(1)
    rotated = tokens(NEW, OLD)
    assert rotated.verify_access(issued_before).user_id == 1
    fresh = rotated.issue_access(2)
    assert jwt.decode(fresh, OctKey.import_key(NEW[1])).header["kid"] == "k-new"


def test_token_signed_by_a_key_no_longer_listed() -> None:
    token = tokens(OLD).issue_access(1)
    assert code_of(tokens(NEW), token) == "unknown_key"


def test_same_kid_other_secret_is_a_bad_signature() -> None:
    token = tokens(("k-new", "x" * 40)).issue_access(1)
    assert code_of(tokens(NEW), token) == "bad_signature"


def test_kinds_never_mix() -> None:
    tok = tokens(NEW)
    assert code_of(tok, tok.issue_access(1), "refresh") == "wrong_token_type"
    assert code_of(tok, tok.issue_refresh(1, uuid.uuid4()).token, "access") == "wrong_token_type"


def test_expired_and_future_tokens() -> None:
    tok = tokens(NEW)
    assert code_of(tok, tok.issue_access(1, now=int(time.time()) - 901)) == "token_expired"
    assert code_of(tok, tok.issue_access(1, now=int(time.time()) + 600)) == "token_not_yet_valid"


def _unsigned(claims: dict[str, object]) -> str:
    return f"{b64json({'alg': 'none', 'kid': 'k-new'})}.{b64json(claims)}."


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "malformed_token"),
        (12, "malformed_token"),
        ("", "malformed_token"),
        ("x" * 64 * 1024, "token_too_large"),
        ("not-a-jwt", "malformed_token"),
        ("a.b.c", "malformed_token"),
        ("é.é.é", "malformed_token"),
        (b64json({"alg": "HS256"}) + ".e30.", "unknown_key"),
        (f"{b64json({'alg': 'HS256', 'kid': 'k-new', 'crit': ['exp']})}.e30.sig", "malformed_token"),
    ],
)
def test_garbage(token: object, code: str) -> None:
    assert code_of(tokens(NEW), token) == code


def test_alg_none_and_rs256_are_refused() -> None:
    tok = tokens(NEW)
    claims = {"iss": "ftl", "typ": "access", "sub": "1", "jti": "j", "iat": 1, "exp": 2**40}
    assert code_of(tok, _unsigned(claims)) == "unsupported_alg"
    rs = f"{b64json({'alg': 'RS256', 'kid': 'k-new'})}.{b64json(claims)}.c2ln"
    assert code_of(tok, rs) == "unsupported_alg"


def test_tampered_payload() -> None:
    tok = tokens(NEW)
    assert code_of(tok, tamper(tok.issue_access(1), sub="2")) == "bad_signature"


def test_foreign_issuer_with_our_key() -> None:
    key = OctKey.import_key(NEW[1])
    now = int(time.time())
    claims = {"iss": "other", "typ": "access", "sub": "1", "jti": "j", "iat": now, "exp": now + 60}
    token = jwt.encode({"alg": "HS256", "kid": "k-new"}, claims, key)
    assert code_of(tokens(NEW), token) == "wrong_issuer"
    del claims["sub"]
    claims["iss"] = "ftl"
    token = jwt.encode({"alg": "HS256", "kid": "k-new"}, claims, key)
    assert code_of(tokens(NEW), token) == "invalid_claims"
