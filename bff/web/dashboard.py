"""`GET /web/dashboard`: a user's profile, stats, recent orders with their fulfilment, and
leaderboard standing, in one call. The read API calls run concurrently: profile, stats then
the leaderboards of the user's currencies, and the recent orders then each one's detail.

Recent orders are those placed in the last `RECENT_DAYS` days, the latest `RECENT_ORDERS` of
them: the read API lists orders oldest first, so the dashboard follows the pages (at most
`MAX_PAGES`) and keeps the end.

The leaderboard standing is the costliest section (a page of `LEADERBOARD_DEPTH` spenders per
currency, from Redis): an operator may switch it off while the BFF runs, with the feature flag
`LEADERBOARD_FLAG` set to false (docs/config.md); it is then `switched-off` and not fetched.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from bff.downstream import Forwarded, ReadApi
from bff.params import Forwarding, Whose
from bff.sections import Unavailable, concurrently, section
from bff.service import USER_PROBLEMS, BffRoute, feature_on, read_api
from bff.web import schemas

RECENT_ORDERS = 5
RECENT_DAYS = 30
PAGE = 200
MAX_PAGES = 5
LEADERBOARD_DEPTH = 200
"""The read API's largest page: a rank below it is not known."""
LEADERBOARD_FLAG = "web-dashboard-leaderboard"
"""On unless set false."""
SWITCHED_OFF = Unavailable(
    reason="switched-off", detail=f"switched off by the feature flag {LEADERBOARD_FLAG}"
)


@dataclass(frozen=True)
class DashboardReads:
    """The read API calls of one user's dashboard."""

    read_api: ReadApi
    forwarded: Forwarded
    user_id: UUID
    with_leaderboard: bool = True

    async def dashboard(self) -> schemas.Dashboard:
        async with concurrently() as group:
            profile = group.create_task(section(self.profile()))
            stats_and_standing = group.create_task(self.stats_and_leaderboard())
            orders = group.create_task(section(self.recent_orders()))
        stats, leaderboard = stats_and_standing.result()
        return schemas.Dashboard(
            user_id=self.user_id,
            profile=profile.result(),
            stats=stats,
            recent_orders=orders.result(),
            leaderboard=leaderboard,
        )

    async def _get(self, name: str, path: str, **params: str | int) -> Any:
        return await self.read_api.get(name, path, self.forwarded, params)

    async def profile(self) -> schemas.Profile:
        return schemas.Profile.model_validate(await self._get("profile", f"/users/{self.user_id}"))

    async def stats_and_leaderboard(
        self,
    ) -> tuple[schemas.Stats | Unavailable, schemas.Leaderboard | Unavailable]:
        stats = await section(self.stats())
        if not self.with_leaderboard:
            return stats, SWITCHED_OFF
        if isinstance(stats, Unavailable):
            return stats, Unavailable(reason="needs-another", detail="it needs the stats")
        return stats, await section(self.leaderboard(stats))

    async def stats(self) -> schemas.Stats:
        path = f"/users/{self.user_id}/stats"
        return schemas.Stats.model_validate(await self._get("stats", path))

    async def leaderboard(self, stats: schemas.Stats) -> schemas.Leaderboard:
        currencies = sorted(stats.spent)
        boards = await asyncio.gather(
            *(
                self._get("leaderboard", f"/leaderboards/{c}/top-spenders", limit=PAGE)
                for c in currencies
            )
        )
        standings = [
            schemas.Standing(currency=c, spent=stats.spent[c], rank=self._rank(board))
            for c, board in zip(currencies, boards, strict=True)
        ]
        return schemas.Leaderboard(depth=LEADERBOARD_DEPTH, standings=standings)

    def _rank(self, board: dict[str, Any]) -> int | None:
        ranks = (s["rank"] for s in board["items"] if s["user_id"] == str(self.user_id))
        return next(ranks, None)

    async def recent_orders(self) -> schemas.RecentOrders:
        since = (datetime.now(UTC) - timedelta(days=RECENT_DAYS)).isoformat()
        query: dict[str, str | int] = {"user_id": str(self.user_id), "placed_from": since}
        latest: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = await self._get("orders", "/orders", **query, limit=PAGE)
            latest = (latest + page["items"])[-RECENT_ORDERS - 1 :]
            if page["next_cursor"] is None:
                break
            query["cursor"] = page["next_cursor"]
        shown = latest[-RECENT_ORDERS:][::-1]
        async with concurrently() as group:
            details = [group.create_task(section(self.fulfilment(o["id"]))) for o in shown]
        items = [
            schemas.RecentOrder.model_validate({**order, "fulfilment": detail.result()})
            for order, detail in zip(shown, details, strict=True)
        ]
        return schemas.RecentOrders(items=items, more=len(latest) > RECENT_ORDERS)

    async def fulfilment(self, order_id: str) -> schemas.FulfilmentStatus | None:
        order = await self._get("fulfilment", f"/orders/{order_id}")
        found = order.get("fulfilment")
        return None if found is None else schemas.FulfilmentStatus.model_validate(found)


router = APIRouter(prefix="/web", tags=["web"], route_class=BffRoute)


@router.get("/dashboard", response_model=schemas.Dashboard, openapi_extra=USER_PROBLEMS)
async def dashboard(request: Request, forwarded: Forwarding, whose: Whose) -> schemas.Dashboard:
    """The caller's dashboard (an operator's: any user's, with `user_id`). Each section
    is `{"unavailable": true, ...}` when the read API could not give it in time, the
    leaderboard also while the feature flag `web-dashboard-leaderboard` is false; the
    answer is a 200 all the same. A user unknown to the read model is a 404."""
    with_leaderboard = feature_on(request, LEADERBOARD_FLAG)
    reads = DashboardReads(read_api(request), forwarded, whose.user_id(), with_leaderboard)
    return await reads.dashboard()
