"""The whole secured path through a real Envoy (issue 10, item 8): users sign up and in at a
real identity service, then command and read through the gateway, the write services, the read
API and the BFFs checking each token themselves against identity's JWKS.

The edge's refusals of missing, expired, forged or unknown-`kid` tokens are
tests/e2e/test_gateway_envoy.py's; here are the services' own refusals of tokens Envoy lets
through (another user's resources, a service account without the scope), and the BFFs
answering in part while the read API is killed, then whole again once it is back, and whole
while the Redis of their rate limits is down (tests/support/edge.py runs the processes)."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import assert_problem
from tests.support.bff import breaker_state
from tests.support.edge import Edge, client_secret_of, running_edge
from tests.support.identity import sign_in, sign_up
from tests.support.servers import wait_until
from tests.support.stack import Stack

SECTIONS = ("profile", "stats", "recent_orders", "leaderboard")
WAIT = {"wait": "10"}
"""Read-your-writes: a read waits up to this long for a command's position."""
LINE = {"sku": "SKU-1", "quantity": 2, "unit_price": "3.50"}


@dataclass(frozen=True)
class User:
    id: str
    headers: dict[str, str]
    renamed: str
    """The position of the user's rename (in users)."""
    ordered: str
    """The position of the line added to their order (in orders)."""
    order: str
    """An order of the user's, with a line."""


@pytest.fixture(scope="module")
def edge(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    with running_edge(stack, tmp_path_factory.mktemp("edge")) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(edge: Edge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.gateway.base, timeout=30) as client:
        yield client


def signed_up(gateway: httpx.Client, name: str) -> User:
    """A user signed up and in through the gateway, who renamed themselves and opened an order
    with a line: their own commands pass."""
    with httpx.Client(base_url=f"{str(gateway.base_url).rstrip('/')}/identity") as identity:
        account = sign_up(identity, name=name)
        assert account.status_code == 201, account.text
        token = sign_in(identity, account.json()["email"])
        assert token.status_code == 200, token.text
    user_id = account.json()["user_id"]
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    renamed = gateway.put(f"/users/{user_id}/name", json={"name": f"{name}!"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    body = {"user_id": user_id, "currency": "EUR"}
    params = {"position": renamed.json()["position"]}
    order = gateway.post("/orders", params=params, json=body, headers=headers)
    assert order.status_code == 201, order.text
    added = gateway.post(f"/orders/{order.json()['id']}/lines", json=LINE, headers=headers)
    assert added.status_code == 200, added.text
    return User(
        user_id, headers, renamed.json()["position"], added.json()["position"], order.json()["id"]
    )


@pytest.fixture(scope="module")
def ada(gateway: httpx.Client) -> User:
    return signed_up(gateway, "Ada")


@pytest.fixture(scope="module")
def bob(gateway: httpx.Client) -> User:
    return signed_up(gateway, "Bob")


def test_a_user_reads_their_own_profile_and_orders_through_the_gateway(
    gateway: httpx.Client, ada: User
) -> None:
    renamed, ordered = {"position": ada.renamed, **WAIT}, {"position": ada.ordered, **WAIT}
    profile = gateway.get(f"/read/users/{ada.id}", params=renamed, headers=ada.headers)
    order = gateway.get(f"/read/orders/{ada.order}", params=ordered, headers=ada.headers)
    listed = gateway.get("/read/orders", params={"user_id": ada.id}, headers=ada.headers)

    assert profile.status_code == 200, profile.text
    assert profile.json()["name"] == "Ada!"
    assert order.status_code == 200, order.text
    assert order.json()["user_id"] == ada.id
    assert [o["id"] for o in listed.json()["items"]] == [ada.order]


def test_another_users_profile_and_orders_are_refused_by_the_services(
    gateway: httpx.Client, edge: Edge, ada: User, bob: User
) -> None:
    refused = {
        "write-users": gateway.put(
            f"/users/{ada.id}/name", json={"name": "Mallory"}, headers=bob.headers
        ),
        "write-orders": gateway.post(f"/orders/{ada.order}/lines", json=LINE, headers=bob.headers),
        "read-api": gateway.get(f"/read/orders/{ada.order}", headers=bob.headers),
    }
    profile = gateway.get(f"/read/users/{ada.id}", headers=bob.headers)
    orders = gateway.get("/read/orders", params={"user_id": ada.id}, headers=bob.headers)

    for upstream, answer in refused.items():
        assert assert_problem(answer, 403, "another user")["instance"] == answer.request.url.path
        line = edge.gateway.logged(path=answer.request.url.raw_path.decode(), status=403)
        assert (line["upstream"], line["details"]) == (upstream, "via_upstream")
    assert_problem(profile, 403)
    assert_problem(orders, 403)
    unchanged = gateway.get(
        f"/read/users/{ada.id}", params={"position": ada.renamed, **WAIT}, headers=ada.headers
    )
    assert unchanged.json()["name"] == "Ada!"


def test_the_bffs_answer_for_the_caller_only(gateway: httpx.Client, ada: User, bob: User) -> None:
    renamed, ordered = {"position": ada.renamed, **WAIT}, {"position": ada.ordered, **WAIT}
    dashboard = gateway.get("/web/dashboard", params=renamed, headers=ada.headers)
    order = gateway.get(f"/mobile/orders/{ada.order}", params=ordered, headers=ada.headers)
    other = gateway.get("/web/dashboard", params={"user_id": ada.id}, headers=bob.headers)
    not_his = gateway.get(f"/mobile/orders/{ada.order}", headers=bob.headers)

    assert dashboard.status_code == 200, dashboard.text
    assert dashboard.json()["profile"]["name"] == "Ada!"
    assert order.status_code == 200, order.text
    assert order.json()["order"]["lines"] == [{"sku": "SKU-1", "quantity": 2, "subtotal": "7.00"}]
    assert_problem(other, 403, "only an operator")
    assert_problem(not_his, 403, "another user")


def service_token(gateway: httpx.Client, client_id: str) -> dict[str, str]:
    form = {"grant_type": "client_credentials"}
    auth = (client_id, client_secret_of(client_id))
    answer = gateway.post("/identity/token", data=form, auth=auth)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_service_token_passes_the_edge_but_not_a_service_without_its_scope(
    gateway: httpx.Client, edge: Edge, ada: User
) -> None:
    """The fulfilment saga's account writes orders but reads nothing: Envoy lets its token
    through (it checks signatures, not scopes); the services refuse what it may not do."""
    saga = service_token(gateway, "fulfilment")
    read = gateway.get(f"/orders/{ada.order}", headers=saga)
    listed = gateway.get("/read/orders", params={"user_id": ada.id}, headers=saga)

    assert_problem(read, 403, "orders:read")
    assert_problem(listed, 403, "orders:read")
    line = edge.gateway.logged(path=f"/orders/{ada.order}", status=403)
    assert (line["upstream"], line["subject"]) == ("write-orders", "fulfilment")


def unavailable(body: dict[str, Any], sections: tuple[str, ...]) -> dict[str, str]:
    """The reason of each unavailable section among `sections`."""
    return {name: body[name]["reason"] for name in sections if "unavailable" in body[name]}


def test_the_bffs_answer_in_part_while_the_read_api_is_killed_and_whole_once_back(
    gateway: httpx.Client, edge: Edge, ada: User
) -> None:
    def dashboard() -> httpx.Response:
        return gateway.get("/web/dashboard", headers=ada.headers)

    def me() -> httpx.Response:
        return gateway.get("/mobile/me", headers=ada.headers)

    whole = gateway.get(
        "/web/dashboard", params={"position": ada.renamed, **WAIT}, headers=ada.headers
    )
    assert unavailable(whole.json(), SECTIONS) == {}
    edge.processes.kill("read-api")

    down = [dashboard() for _ in range(3)]
    mobile = [me() for _ in range(3)]
    web_metrics = httpx.get(f"{edge.processes.url('bff-web')}/metrics").text
    mobile_metrics = httpx.get(f"{edge.processes.url('bff-mobile')}/metrics").text

    assert [answer.status_code for answer in down + mobile] == [200] * 6
    assert unavailable(down[0].json(), SECTIONS) == {
        "profile": "unreachable",
        "stats": "unreachable",
        "recent_orders": "unreachable",
        "leaderboard": "needs-another",
    }
    assert unavailable(down[-1].json(), SECTIONS)["profile"] == "breaker-open"
    assert unavailable(mobile[-1].json(), ("profile", "totals")) == {
        "profile": "breaker-open",
        "totals": "breaker-open",
    }
    assert "etag" not in mobile[-1].headers
    assert breaker_state(web_metrics, "read-api:profile") == 2
    assert breaker_state(mobile_metrics, "read-api:profile") == 2

    edge.processes.start("read-api")

    wait_until(lambda: not unavailable(dashboard().json(), SECTIONS), 30, "the dashboard whole")
    wait_until(lambda: not unavailable(me().json(), ("profile", "totals")), 30, "mobile whole")
    healed = httpx.get(f"{edge.processes.url('bff-web')}/metrics").text
    assert breaker_state(healed, "read-api:profile") == 0
    assert me().headers["etag"]


def test_the_bffs_answer_whole_while_their_rate_limit_store_is_down(
    gateway: httpx.Client, edge: Edge, ada: User
) -> None:
    """The BFFs' other backend: the Redis of their rate limits. Down, the limits fail open
    (authentication still keeps strangers out); back, the BFF counts its callers there again."""

    def me() -> httpx.Response:
        return gateway.get("/mobile/me", headers=ada.headers)

    def counted() -> bool:
        assert me().status_code == 200
        with edge.rate_limits.client() as redis:
            return any(ada.id in key.decode() for key in redis.scan_iter("strata:rate-limits*"))

    edge.rate_limits.crash()
    answers = [me() for _ in range(3)]
    metrics = httpx.get(f"{edge.processes.url('bff-mobile')}/metrics").text

    assert [answer.status_code for answer in answers] == [200] * 3
    assert unavailable(answers[-1].json(), ("profile", "totals")) == {}
    assert breaker_state(metrics, "rate-limits") == 2

    edge.rate_limits.start()
    with edge.rate_limits.client() as redis:
        redis.flushall()
    wait_until(counted, 30, "the mobile BFF counts its callers in Redis again")
