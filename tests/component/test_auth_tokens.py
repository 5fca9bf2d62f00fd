"""The token verifier and the JWKS cache against a real JWKS served over HTTP."""

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from contexts.settings import Settings
from runtime.auth.jwks import JwksCache, KeysUnavailable, StaticKeys
from runtime.auth.principal import Role
from runtime.auth.tokens import service_tokens
from runtime.auth.verifier import InvalidToken, TokenVerifier
from tests.support.auth import ISSUER, SAGA_SCOPE, Identity, JwksServer, new_key
from tests.support.settings import settings_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def identity() -> Identity:
    return Identity(new_key("k1"))


@pytest.fixture
def jwks(identity: Identity) -> Iterator[JwksServer]:
    with JwksServer(identity.key, identity=identity).serving() as server:
        yield server


def verify(server: JwksServer, *tokens: str, clock: Clock | None = None) -> list[object]:
    """Verify each token in turn with one verifier; each result a principal or an error."""

    async def run() -> list[object]:
        cache = JwksCache(server.url, min_interval=10, max_age=300, clock=clock or Clock())
        verifier = TokenVerifier(cache, ISSUER, leeway=30)
        results: list[object] = []
        for token in tokens:
            try:
                results.append(await verifier.verify(token))
            except (InvalidToken, KeysUnavailable) as error:
                results.append(error)
        return results

    return asyncio.run(run())


def refused(result: object, fragment: str) -> bool:
    return isinstance(result, InvalidToken) and fragment in str(result)


def unsigned(header: dict[str, str], claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def test_a_valid_token_gives_its_subject_roles_and_scopes(
    identity: Identity, jwks: JwksServer
) -> None:
    token = identity.token("svc-saga", ["service"], "payments:write orders:write")
    [principal] = verify(jwks, token)
    assert principal.subject == "svc-saga"  # type: ignore[attr-defined]
    assert principal.roles == {Role.SERVICE}  # type: ignore[attr-defined]
    assert principal.scopes == {"payments:write", "orders:write"}  # type: ignore[attr-defined]


def test_expired_forged_and_misaddressed_tokens_are_refused(
    identity: Identity, jwks: JwksServer
) -> None:
    forger = Identity(new_key("k1"))  # the same kid, another key
    results = verify(
        jwks,
        identity.token(seconds=-31),  # past the 30 s leeway
        forger.token(),
        identity.token(iss="http://elsewhere"),
        identity.token(aud="another-audience"),
        identity.token(nbf=int(time.time()) + 3600),
    )
    expired, forged, other_issuer, other_audience, not_yet = results
    assert refused(expired, "expired")
    assert refused(forged, "signature")
    assert refused(other_issuer, "iss")
    assert refused(other_audience, "aud")
    assert refused(not_yet, "not yet valid")


def test_a_token_within_the_leeway_is_still_valid(identity: Identity, jwks: JwksServer) -> None:
    [principal] = verify(jwks, identity.token(seconds=-5))
    assert not isinstance(principal, InvalidToken)


def test_only_es256_is_accepted(identity: Identity, jwks: JwksServer) -> None:
    claims = {"iss": ISSUER, "aud": "strata", "sub": "x", "exp": 2**40, "roles": ["operator"]}
    none = unsigned({"alg": "none", "kid": "k1"}, claims)
    secret = OctKey.import_key(json.dumps(jwks.keys[0].as_dict(private=False)))
    hs256 = jwt.encode({"alg": "HS256", "kid": "k1"}, claims, secret)
    results = verify(jwks, none, hs256, "not-a-token", "")
    assert all(refused(result, "") for result in results)
    assert refused(results[0], "ES256") and refused(results[1], "ES256")


def test_an_unknown_kid_refetches_once_per_interval(identity: Identity, jwks: JwksServer) -> None:
    clock = Clock()
    stranger = Identity(new_key("k-unknown"))

    async def run() -> list[int]:
        cache = JwksCache(jwks.url, min_interval=10, max_age=300, clock=clock)
        verifier = TokenVerifier(cache, ISSUER)
        await verifier.verify(identity.token())
        fetches = [jwks.fetches]
        clock.now += 10
        for _ in range(3):
            with pytest.raises(InvalidToken, match="kid"):
                await verifier.verify(stranger.token())
        fetches.append(jwks.fetches)
        clock.now += 10
        with pytest.raises(InvalidToken, match="kid"):
            await verifier.verify(stranger.token())
        return [*fetches, jwks.fetches]

    assert asyncio.run(run()) == [1, 2, 3]


def test_a_rotated_key_is_fetched_when_its_first_token_arrives(
    identity: Identity, jwks: JwksServer
) -> None:
    clock = Clock()
    rotated = Identity(new_key("k2"))

    async def run() -> list[object]:
        cache = JwksCache(jwks.url, min_interval=10, max_age=300, clock=clock)
        verifier = TokenVerifier(cache, ISSUER)
        first = await verifier.verify(identity.token())
        jwks.keys.append(rotated.key)
        clock.now += 10
        second = await verifier.verify(rotated.token())
        return [first, second, await verifier.verify(identity.token())]

    results = asyncio.run(run())
    assert not any(isinstance(result, InvalidToken) for result in results)
    assert jwks.fetches == 2


def test_the_held_keys_answer_while_the_jwks_is_down(identity: Identity, jwks: JwksServer) -> None:
    clock = Clock()

    async def run() -> list[object]:
        cache = JwksCache(jwks.url, min_interval=10, max_age=60, clock=clock)
        verifier = TokenVerifier(cache, ISSUER)
        results: list[object] = [await verifier.verify(identity.token())]
        jwks.down = True
        clock.now += 3600  # far past max_age: a background refresh is attempted, and fails
        results.append(await verifier.verify(identity.token()))
        await cache.settled()
        results.append(await verifier.verify(identity.token()))
        return results

    results = asyncio.run(run())
    assert not any(isinstance(result, InvalidToken) for result in results)
    assert jwks.fetches == 2  # the identity was asked again, and its outage changed nothing


def test_no_key_at_all_while_the_jwks_is_down_cannot_tell(
    identity: Identity, jwks: JwksServer
) -> None:
    """Neither accepted nor refused: the token may be good (a 503, not a 401)."""
    jwks.down = True
    [result] = verify(jwks, identity.token())
    assert isinstance(result, KeysUnavailable)
    assert "keys cannot be fetched: it answered 503" in str(result)


def test_no_key_at_all_while_the_jwks_is_unreachable_or_unreadable_cannot_tell(
    identity: Identity, jwks: JwksServer
) -> None:
    with jwks.stopped():
        [unreachable] = verify(jwks, identity.token())
    jwks.garbage = True
    [unreadable] = verify(jwks, identity.token())
    assert isinstance(unreachable, KeysUnavailable) and "cannot be reached" in str(unreachable)
    assert isinstance(unreadable, KeysUnavailable) and "not a JWKS" in str(unreadable)


def test_a_failed_fetch_holds_the_next_back_a_moment_not_an_interval(
    identity: Identity, jwks: JwksServer
) -> None:
    clock = Clock()

    async def run() -> list[object]:
        cache = JwksCache(jwks.url, min_interval=10, max_age=300, retry_pause=1, clock=clock)
        verifier = TokenVerifier(cache, ISSUER)
        results: list[object] = []
        for down, step in ((True, 0.0), (False, 0.5), (False, 0.5)):
            # down; back but within the pause after the failed fetch; past the pause
            jwks.down = down
            clock.now += step
            try:
                results.append(await verifier.verify(identity.token()))
            except KeysUnavailable as error:
                results.append(error)
            results.append(jwks.fetches)
        return results

    down, fetched, held_back, not_fetched, back, fetched_again = asyncio.run(run())
    assert isinstance(down, KeysUnavailable) and isinstance(held_back, KeysUnavailable)
    assert not isinstance(back, Exception)
    assert [fetched, not_fetched, fetched_again] == [1, 1, 2]


def test_client_credentials_keep_a_service_token(jwks: JwksServer) -> None:
    settings = settings_of(jwks.settings())

    async def run() -> object:
        async with service_tokens(settings) as source:
            for _ in range(200):  # the first fetch is a loopback round trip
                if source.token() is not None:
                    break
                await asyncio.sleep(0.01)
            token = source.token()
        assert token is not None
        return await TokenVerifier(
            JwksCache(jwks.url, min_interval=10, max_age=300), ISSUER
        ).verify(token)

    principal = asyncio.run(run())
    assert principal.roles == {Role.SERVICE}  # type: ignore[attr-defined]
    assert principal.scopes == set(SAGA_SCOPE.split())  # type: ignore[attr-defined]


def test_no_credentials_no_token() -> None:
    async def run() -> str | None:
        async with service_tokens(Settings()) as source:
            return source.token()

    assert asyncio.run(run()) is None


def test_concurrent_first_tokens_share_one_fetch(identity: Identity, jwks: JwksServer) -> None:
    async def run() -> list[object]:
        verifier = TokenVerifier(JwksCache(jwks.url, min_interval=10, max_age=300), ISSUER)
        tokens = [identity.token() for _ in range(16)]
        return await asyncio.gather(*(verifier.verify(token) for token in tokens))

    assert len(asyncio.run(run())) == 16  # none refused while the first fetch was in flight
    assert jwks.fetches == 1


def test_concurrent_first_tokens_while_the_jwks_is_down_share_one_failed_fetch(
    identity: Identity, jwks: JwksServer
) -> None:
    jwks.down = True

    async def run() -> list[object]:
        verifier = TokenVerifier(JwksCache(jwks.url, min_interval=10, max_age=300), ISSUER)
        tokens = [identity.token() for _ in range(16)]
        verifying = (verifier.verify(token) for token in tokens)
        return await asyncio.gather(*verifying, return_exceptions=True)

    assert all(isinstance(result, KeysUnavailable) for result in asyncio.run(run()))
    assert jwks.fetches == 1


def test_a_remembered_token_skips_its_signature_check_not_its_expiry(identity: Identity) -> None:
    now = [1_000_000.0]
    keys = StaticKeys({"k1": identity.key})
    verifier = TokenVerifier(keys, ISSUER, leeway=30, now=lambda: now[0])
    token = identity.token(iat=int(now[0]), exp=int(now[0]) + 60)

    async def run() -> list[object]:
        results: list[object] = []
        for advance in (0, 10, 20, 100):  # the last one is past exp + leeway
            now[0] += advance
            try:
                results.append(await verifier.verify(token))
            except InvalidToken as error:
                results.append(error)
        return results

    *valid, expired = asyncio.run(run())
    assert all(not isinstance(result, InvalidToken) for result in valid)
    assert refused(expired, "expired")
    assert verifier.signature_checks == 1


def test_a_remembered_token_is_verified_anew_once_its_key_is_replaced(identity: Identity) -> None:
    held = {"k1": identity.key}
    verifier = TokenVerifier(StaticKeys(held), ISSUER)
    token = identity.token()

    async def run() -> list[object]:
        first = await verifier.verify(token)
        held["k1"] = new_key("k1")  # the identity withdrew the key the token was signed with
        try:
            return [first, await verifier.verify(token)]
        except InvalidToken as error:
            return [first, error]

    first, second = asyncio.run(run())
    assert not isinstance(first, InvalidToken)
    assert refused(second, "signature")
    assert verifier.signature_checks == 2


def test_the_remembered_tokens_are_bounded(identity: Identity) -> None:
    verifier = TokenVerifier(StaticKeys({"k1": identity.key}), ISSUER, remember=2)
    first, second, third = (identity.token(subject=f"s{i}") for i in range(3))

    async def run() -> None:
        for token in (first, second, third, third, first):
            await verifier.verify(token)

    asyncio.run(run())
    assert verifier.signature_checks == 4  # the first was forgotten when the third came


def signed_text(identity: Identity, header: str, claims: str) -> str:
    """A token over these exact JSON texts, signed with the identity's own key."""

    def part(text: bytes) -> bytes:
        return base64.urlsafe_b64encode(text).rstrip(b"=")

    signing_input = part(header.encode()) + b"." + part(claims.encode())
    signature = JWSRegistry.algorithms["ES256"].sign(signing_input, identity.key)
    return (signing_input + b"." + part(signature)).decode()


def test_repeated_members_and_impossible_instants_are_refused_even_when_signed(
    identity: Identity, jwks: JwksServer
) -> None:
    now = int(time.time())
    claims = (
        f'"iss": "{ISSUER}", "aud": "strata", "iat": {now}, "exp": {now + 300},'
        ' "roles": ["operator"]'
    )
    header = '{"alg": "ES256", "kid": "k1"}'
    results = verify(
        jwks,
        signed_text(identity, header, f'{{{claims}, "sub": "ada", "sub": "root"}}'),
        signed_text(identity, '{"alg": "ES256", "kid": "k1", "kid": "k1"}', f"{{{claims}}}"),
        identity.token(exp=10**30),
        identity.token(iat=-1),
        identity.token(nbf="soon"),
        identity.token(exp=True),
        signed_text(identity, header, f'{{{claims}, "sub": "ada"}}'),
    )
    repeated_sub, repeated_kid, far_exp, negative_iat, text_nbf, boolean_exp, fine = results
    assert refused(repeated_sub, "claims names 'sub' twice")
    assert refused(repeated_kid, "header names 'kid' twice")
    assert refused(far_exp, "exp 10000000000000000000… is not an instant")
    assert refused(negative_iat, "iat -1 is not an instant")
    assert refused(text_nbf, "nbf must be a number")
    assert refused(boolean_exp, "exp must be a number")
    assert getattr(fine, "subject", None) == "ada"


def test_refusals_say_what_is_wrong_in_a_short_line(identity: Identity, jwks: JwksServer) -> None:
    token = identity.token()
    trailing, non_ascii, huge_exp = verify(
        jwks, token + " junk", "é" + token, identity.token(exp=10**400)
    )
    assert str(trailing) == "bad signature"
    assert str(non_ascii) == "the token is not a compact JWS: it holds characters outside ASCII"
    assert (
        str(huge_exp) == "the token's exp 10000000000000000000… is not an instant before year 10000"
    )
