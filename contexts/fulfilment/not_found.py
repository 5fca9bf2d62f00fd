"""An order's fulfilment that is not there, said of the order the caller named.

Callers name a fulfilment by its order (`/fulfilments/{order_id}`, `replay sagas ... ORDER_ID`);
the saga's own id is derived from it (`ids.saga_id`), and the store's "no OrderFulfilment with id
<saga id>" would name an id the caller never sent.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from domain.errors import AggregateNotFound, NoSuchVersion, NotFoundAtTime


@contextmanager
def named_by_order(order_id: UUID) -> Iterator[None]:
    """Within it, the order's saga not found (or not yet started at a time) is said of the
    order: "no fulfilment of order X", "the fulfilment of order X did not exist yet at T"."""
    try:
        yield
    except NoSuchVersion:
        raise
    except NotFoundAtTime as early:
        raise early.said_of(f"the fulfilment of order {order_id}") from None
    except AggregateNotFound:
        raise AggregateNotFound(f"no fulfilment of order {order_id}") from None
