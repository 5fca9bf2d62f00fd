"""KeyedLocks: one key's holders queue, other keys pass, and the table empties behind them."""

import threading
from concurrent.futures import ThreadPoolExecutor

from domain.keyed_locks import KeyedLocks


def test_holders_of_one_key_never_overlap() -> None:
    locks = KeyedLocks()
    inside = 0
    most_inside = 0
    count_guard = threading.Lock()

    def hold_once(_: int) -> None:
        nonlocal inside, most_inside
        with locks.hold("a"):
            with count_guard:
                inside += 1
                most_inside = max(most_inside, inside)
            threading.Event().wait(0.001)
            with count_guard:
                inside -= 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(hold_once, range(64)))

    assert most_inside == 1
    assert len(locks) == 0


def test_a_held_key_does_not_block_another_key() -> None:
    locks = KeyedLocks()
    other_key_done = threading.Event()

    def use_other_key() -> None:
        with locks.hold("b"):
            other_key_done.set()

    with locks.hold("a"):
        worker = threading.Thread(target=use_other_key)
        worker.start()
        assert other_key_done.wait(10)
        assert len(locks) == 1
    worker.join()
    assert len(locks) == 0


def test_a_key_is_released_when_its_holder_raises() -> None:
    locks = KeyedLocks()
    try:
        with locks.hold("a"):
            raise RuntimeError("decided badly")
    except RuntimeError:
        pass
    assert len(locks) == 0
    with locks.hold("a"):
        assert len(locks) == 1
