"""Money in the answers of the read API and the BFFs: one type, so the three OpenAPI documents
say the same, and a BFF takes every amount the read API sends (`readmodels.formats.money_text`
writes them)."""

from typing import Annotated

from pydantic import Field

MONEY_PATTERN = r"^-?\d+(\.\d{2,3})?$"

Money = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        examples=["12.30", "1500", "1.230"],
        description="A decimal string with as many decimals as the currency's minor units in"
        ' ISO 4217: 2 for USD ("12.30"), none for JPY ("1500"), 3 for BHD ("1.230"). A currency'
        " the table no longer lists, or an amount its minor units cannot hold (stored before"
        " prices followed them), has 2.",
    ),
]
