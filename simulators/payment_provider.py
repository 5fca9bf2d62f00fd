"""`strata-payment-provider`: a payment provider, simulated, as an HTTP process of its own.

An authorization holds an amount; it is captured once (at most the amount held) or voided
before a capture; a captured amount is refunded, in one refund or several, up to what was
captured. Every operation takes an `Idempotency-Key` (see `simulators.control`).

Declines follow `/control`: an amount whose cents are `decline_cents` (13 by default, so
`"10.13"` is declined for "insufficient funds"), an amount in `decline_amounts`, and a share
`decline_rate` of the others. `GET /control/ledger` lists every operation and, per
authorization, its state and net charge (captured - refunded).
"""

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from runtime.http.problem_types import INVALID_VALUE, NOT_FOUND, RULE_VIOLATED
from simulators.control import (
    Amount,
    Faults,
    IdempotencyKey,
    Simulator,
    create_simulator_app,
    operations_router,
    simulator_main,
)
from simulators.ledger import Json, Ledger, SimulatorError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class PaymentControl(Faults):
    decline_cents: int | None = Field(
        13, ge=0, le=99, description="Decline every amount with these cents (null: none)."
    )
    decline_amounts: list[Amount] = Field(
        default_factory=list, description="Decline these amounts."
    )
    decline_rate: float = Field(0, ge=0, le=1, description="Share of other amounts declined.")


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: Currency

    def wire(self) -> Json:
        """The amount normalised to cents, as recorded (`"12.3"` is `"12.30"`)."""
        return {"amount": str(Decimal(self.amount).quantize(CENT)), "currency": self.currency}


@dataclass
class Authorization:
    amount: Decimal
    currency: str
    state: str = "authorized"  # then captured, voided or refunded
    captured: Decimal = ZERO
    refunded: Decimal = ZERO

    @classmethod
    def load(cls, record: Json) -> "Authorization":
        amounts = {name: Decimal(record[name]) for name in ("amount", "captured", "refunded")}
        return cls(currency=record["currency"], state=record["state"], **amounts)

    def dump(self) -> Json:
        return {
            "amount": str(self.amount),
            "currency": self.currency,
            "state": self.state,
            "captured": str(self.captured),
            "refunded": str(self.refunded),
        }

    def summary(self) -> Json:
        return {**self.dump(), "net_charge": str(self.captured - self.refunded)}


class PaymentLedger(Ledger):
    def summary(self) -> Json:
        records = {ref: Authorization.load(r).summary() for ref, r in self.records().items()}
        return {**super().summary(), "authorizations": records}

    def authorize(self, money: Json, control: PaymentControl) -> Json:
        reason = _decline_reason(Decimal(money["amount"]), control)
        if reason is not None:
            return {"state": "declined", "reason": reason}
        reference = f"auth_{uuid.uuid4().hex}"
        self.keep(reference, Authorization(Decimal(money["amount"]), money["currency"]).dump())
        return {"state": "approved", "reference": reference}

    def capture(self, reference: str, money: Json) -> Json:
        auth = self._in_state(reference, "authorized", "capture")
        amount = _same_currency(auth, money)
        if amount > auth.amount:
            raise SimulatorError(INVALID_VALUE, f"capture of {amount} exceeds {auth.amount} held")
        auth.state, auth.captured = "captured", amount
        return self._keep(reference, auth)

    def void(self, reference: str) -> Json:
        auth = self._in_state(reference, "authorized", "void")
        auth.state = "voided"
        return self._keep(reference, auth)

    def refund(self, reference: str, money: Json) -> Json:
        auth = self._in_state(reference, "captured", "refund")
        amount = _same_currency(auth, money)
        if auth.refunded + amount > auth.captured:
            left = auth.captured - auth.refunded
            raise SimulatorError(INVALID_VALUE, f"refund of {amount} exceeds {left} left")
        auth.refunded += amount
        if auth.refunded == auth.captured:
            auth.state = "refunded"
        return self._keep(reference, auth)

    def _keep(self, reference: str, auth: Authorization) -> Json:
        """Keep the authorization as changed, and answer its state."""
        self.keep(reference, auth.dump())
        return {"reference": reference, "state": auth.state}

    def _in_state(self, reference: str, state: str, operation: str) -> Authorization:
        record = self.find(reference)
        if record is None:
            raise SimulatorError(NOT_FOUND, f"no authorization {reference!r}")
        auth = Authorization.load(record)
        if auth.state != state:
            raise SimulatorError(
                RULE_VIOLATED, f"cannot {operation} an authorization that is {auth.state}"
            )
        return auth


def _decline_reason(amount: Decimal, control: PaymentControl) -> str | None:
    if control.decline_cents is not None and amount % 1 * 100 == control.decline_cents:
        return "insufficient funds"
    if amount in {Decimal(declined) for declined in control.decline_amounts}:
        return "card declined"
    if random.random() < control.decline_rate:
        return "declined by the issuer"
    return None


def _same_currency(auth: Authorization, money: Json) -> Decimal:
    if money["currency"] != auth.currency:
        raise SimulatorError(
            INVALID_VALUE, f"currency {money['currency']} is not the {auth.currency} authorized"
        )
    return Decimal(money["amount"])


def create_app(ledger: Path | str) -> FastAPI:
    """The app, its ledger in the SQLite file `ledger` (opened at the first request)."""
    simulator = Simulator(PaymentControl, PaymentLedger(ledger))
    router = operations_router(simulator)

    @router.post("/authorizations")
    async def authorize(body: Money, key: IdempotencyKey) -> Json:
        """Hold an amount: `{state: approved, reference}` or `{state: declined, reason}`."""
        money = body.wire()
        request = {"kind": "authorize", **money}
        return await simulator.perform(key, request, lambda ledger, c: ledger.authorize(money, c))

    @router.post("/authorizations/{reference}/capture")
    async def capture(reference: str, body: Money, key: IdempotencyKey) -> Json:
        """Take (at most) the amount held; 409 unless the authorization is only authorized."""
        money = body.wire()
        request = {"kind": "capture", "reference": reference, **money}
        return await simulator.perform(
            key, request, lambda ledger, _: ledger.capture(reference, money)
        )

    @router.post("/authorizations/{reference}/void")
    async def void(reference: str, key: IdempotencyKey) -> Json:
        """Release the amount held; 409 once captured (refund it instead) or voided."""
        request = {"kind": "void", "reference": reference}
        return await simulator.perform(key, request, lambda ledger, _: ledger.void(reference))

    @router.post("/authorizations/{reference}/refund")
    async def refund(reference: str, body: Money, key: IdempotencyKey) -> Json:
        """Give back (part of) what was captured; 409 unless captured."""
        money = body.wire()
        request = {"kind": "refund", "reference": reference, **money}
        return await simulator.perform(
            key, request, lambda ledger, _: ledger.refund(reference, money)
        )

    return create_simulator_app("strata payment-provider simulator", simulator, router)


main = simulator_main(
    "strata-payment-provider",
    "payment-provider",
    create_app,
    lambda settings: settings.payment_provider_port,
    lambda settings: settings.payment_provider_ledger,
)
