"""Access tokens and signing keys, without I/O: issue and verify with joserfc, and which keys
the JWKS publishes across a rotation (the old `kid` stays verifiable until its tokens expire)."""

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from identity.keys import LEEWAY_SECONDS, KeyCache, StoredKey, new_key, published_keys, signing_key
from identity.tokens import AUDIENCE, Grant, InvalidToken, mint, verify

ISSUER = "http://127.0.0.1:8200"
TTL = 300
SAGA = Grant("fulfilment", ("service",), "payments:write shipping:write")


def parsed(stored: StoredKey) -> ECKey:
    return KeyCache().key(stored)


def test_a_token_carries_the_contract_claims_and_verifies_with_its_key() -> None:
    key = parsed(new_key(0))
    token = mint(SAGA, key, ISSUER, now=1_000, lifetime=TTL).token
    decoded = jwt.decode(token, key, algorithms=["ES256"])
    assert decoded.header == {"typ": "JWT", "alg": "ES256", "kid": key.kid}
    claims = decoded.claims
    assert (claims["iss"], claims["aud"], claims["sub"]) == (ISSUER, AUDIENCE, "fulfilment")
    assert (claims["iat"], claims["exp"]) == (1_000, 1_000 + TTL)
    assert claims["roles"] == ["service"]
    assert claims["scope"] == "payments:write shipping:write"
    assert claims["jti"]
    assert verify(token, [key], ISSUER, now=1_000 + TTL - 1) == SAGA


@pytest.mark.parametrize(
    ("issuer", "now", "fragment"),
    [
        (ISSUER, 1_000 + TTL + 1, "expired"),
        ("http://elsewhere", 1_000, "iss"),
    ],
)
def test_a_token_expired_or_of_another_issuer_is_refused(
    issuer: str, now: int, fragment: str
) -> None:
    key = parsed(new_key(0))
    token = mint(SAGA, key, ISSUER, now=1_000, lifetime=TTL).token
    with pytest.raises(InvalidToken, match=fragment):
        verify(token, [key], issuer, now=now)


def test_a_forged_or_unknown_kid_token_is_refused() -> None:
    genuine, forger = parsed(new_key(0)), parsed(new_key(0))
    assert genuine.kid is not None  # a stored key's JWK carries its kid
    impostor = ECKey.import_key(forger.as_dict(private=True), parameters={"kid": genuine.kid})
    forged = mint(SAGA, impostor, ISSUER, now=1_000, lifetime=TTL).token
    unknown = mint(SAGA, forger, ISSUER, now=1_000, lifetime=TTL).token
    for token in (forged, unknown, forged[:-4] + "AAAA", "not.a.token"):
        with pytest.raises(InvalidToken):
            verify(token, [genuine], ISSUER, now=1_000)


def test_roles_outside_the_contract_are_refused() -> None:
    key = parsed(new_key(0))
    token = mint(Grant("x", ("admin",)), key, ISSUER, now=1_000, lifetime=TTL).token
    with pytest.raises(InvalidToken, match="roles"):
        verify(token, [key], ISSUER, now=1_000)


def test_a_rotation_keeps_the_old_kid_published_until_its_tokens_expire() -> None:
    old, new = new_key(active_from=0), new_key(active_from=1_000)
    keys = [old, new]
    before = published_keys(keys, now=999, token_seconds=TTL)
    assert [k.kid for k in before] == [new.kid, old.kid]  # the new one, published ahead
    assert signing_key(keys, 999) == old
    assert signing_key(keys, 1_000) == new

    last_old_token = mint(SAGA, parsed(old), ISSUER, now=999, lifetime=TTL).token
    still = 999 + TTL + LEEWAY_SECONDS - 1  # its last second of validity, skew allowed
    published = [parsed(k) for k in published_keys(keys, now=still, token_seconds=TTL)]
    assert verify(last_old_token, published, ISSUER, now=still, leeway=LEEWAY_SECONDS) == SAGA

    after = published_keys(keys, now=1_000 + TTL + LEEWAY_SECONDS, token_seconds=TTL)
    assert after == [new]


def test_keys_made_at_the_same_moment_are_ordered_by_kid() -> None:
    first, second = sorted([new_key(5), new_key(5)], key=lambda k: k.kid)
    assert signing_key([second, first], 5) == second
    assert signing_key([first, second], 5) == second
    assert signing_key([first], 4) is None


def test_the_public_jwk_has_no_private_part() -> None:
    stored = new_key(0)
    jwk = KeyCache().public_jwk(stored)
    assert jwk["kid"] == stored.kid
    assert "d" not in jwk
