"""The users write service, as identity calls it: create a profile, read a profile's address.

Identity calls it with a token of its own (`identity` as a service with `users:write`), and with
an Idempotency-Key derived from its caller's, so a retried sign-up creates one profile.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

USERS_SCOPE = "users:write users:read"
SERVICE_SUBJECT = "identity"


class ProfilesUnavailable(Exception):
    """The users service did not answer, or answered 5xx."""


class ProfileRefused(Exception):
    """The users service refused the request (4xx): its problem is passed on as it is."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", status)))
        self.status = status
        self.problem = problem


def users_idempotency_key(sign_up_key: str) -> str:
    """The key of the profile's creation: a digest, so it is well-formed whatever the caller's
    key, and no client can guess it from its own without identity's prefix."""
    return "identity-sign-up-" + hashlib.sha256(sign_up_key.encode()).hexdigest()


class HttpProfiles:
    def __init__(
        self, base_url: str, client: httpx.AsyncClient, token: Callable[[], Awaitable[str]]
    ) -> None:
        self._base = base_url.rstrip("/")
        self._client = client
        self._token = token

    async def register(self, name: str, email: str, sign_up_key: str) -> str:
        """The id of the profile created (or created before, with the same key)."""
        headers = {"Idempotency-Key": users_idempotency_key(sign_up_key)}
        body = await self._call("POST", "/users", headers, {"name": name, "email": email})
        return str(body["id"])

    async def email_of(self, user_id: str) -> str:
        body = await self._call("GET", f"/users/{user_id}", {}, None)
        return str(body["email"])

    async def _call(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, str] | None
    ) -> dict[str, Any]:
        headers = {**headers, "Authorization": f"Bearer {await self._token()}"}
        try:
            response = await self._client.request(
                method, self._base + path, headers=headers, json=body
            )
        except httpx.HTTPError as error:
            detail = str(error) or type(error).__name__
            raise ProfilesUnavailable(f"the users service: {detail}") from error
        status = response.status_code
        if status >= 500 or status in (401, 403):  # 401/403: identity's own token, refused
            raise ProfilesUnavailable(f"the users service answered {status}")
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            raise ProfilesUnavailable(f"the users service answered {status} without JSON") from None
        if status >= 400:
            raise ProfileRefused(status, answer)
        return answer


class NoProfiles:
    """No users service configured (`STRATA_WRITE_URLS` has no `users=`)."""

    async def register(self, name: str, email: str, sign_up_key: str) -> str:
        raise ProfilesUnavailable("no users service: set STRATA_WRITE_URLS=users=http://...")

    async def email_of(self, user_id: str) -> str:
        raise ProfilesUnavailable("no users service: set STRATA_WRITE_URLS=users=http://...")
