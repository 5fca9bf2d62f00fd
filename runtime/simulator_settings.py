"""The provider simulators' settings as processes of their own (a mixin of
`runtime.settings.CommonSettings`): their ports and their ledgers' files. `strata` keeps the
ledgers of the simulators it runs in STRATA_DATA_DIR/simulators/ instead (embedded/simulators.py).
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

LEDGER_FOLDER = Path("var/simulators")


class SimulatorSettings(BaseSettings):
    payment_provider_port: int = Field(
        8100, ge=1, le=65535, description="Port the payment-provider simulator listens on."
    )
    carrier_port: int = Field(
        8101, ge=1, le=65535, description="Port the carrier simulator listens on."
    )
    payment_provider_ledger: Path = Field(
        LEDGER_FOLDER / "payment-provider.sqlite",
        description="SQLite file of the payment-provider simulator's ledger (created if missing).",
    )
    carrier_ledger: Path = Field(
        LEDGER_FOLDER / "carrier.sqlite",
        description="SQLite file of the carrier simulator's ledger (created if missing).",
    )
