"""The embedded default runs the provider simulators in its process unless their URLs are set:
the participants are pointed at the mounted simulators, or at the URL given."""

import httpx
from starlette.routing import Mount

from contexts.settings import Settings
from embedded import simulators
from embedded.app import create_app


def _mounts(settings: Settings) -> set[str]:
    return {route.path for route in create_app(settings).routes if isinstance(route, Mount)}


def test_with_no_provider_url_both_simulators_are_mounted_and_used() -> None:
    settings = Settings(host="0.0.0.0", port=8765)

    pointed = simulators.pointed_at_them(settings)

    assert pointed.payment_provider_url == "http://127.0.0.1:8765/simulators/payment-provider"
    assert pointed.carrier_url == "http://127.0.0.1:8765/simulators/carrier"
    assert _mounts(settings) == {"/simulators/payment-provider", "/simulators/carrier"}


def test_a_provider_url_set_explicitly_is_used_and_its_simulator_not_run() -> None:
    settings = Settings(port=8765, payment_provider_url="http://provider.example:9000")

    pointed = simulators.pointed_at_them(settings)

    assert pointed.payment_provider_url == "http://provider.example:9000"
    assert pointed.carrier_url == "http://127.0.0.1:8765/simulators/carrier"
    assert _mounts(settings) == {"/simulators/carrier"}


def test_an_ipv6_address_is_bracketed_in_the_simulators_urls() -> None:
    """`STRATA_HOST=::1`: `http://::1:8765/...` is no URL (every provider call failed with
    "Invalid port"), `http://[::1]:8765/...` is; `::` (any address) is reached on loopback."""
    pointed = simulators.pointed_at_them(Settings(host="::1", port=8765))
    assert pointed.payment_provider_url == "http://[::1]:8765/simulators/payment-provider"
    assert httpx.URL(pointed.carrier_url).host == "::1"
    assert simulators.own_url(Settings(host="::", port=8765)) == "http://127.0.0.1:8765"
