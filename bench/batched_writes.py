"""How to write one table's rows of a projector batch: client CPU and wall time per row.

256 rows of an `orders`-like table (uuid key, text, bigint, int, timestamptz) are updated in
one transaction, 30 times per method after 3 warm-up rounds, on a scratch table:

- per-row: one `UPDATE … WHERE id = %s` per row, psycopg pipeline mode (the projector before
  batching);
- executemany: the same statement, `executemany`, pipeline mode;
- unnest-text / unnest-binary: one `UPDATE … FROM unnest(%s::uuid[], …)`, array parameters in
  text or binary format (what `projections.row_batch_sql` sends, binary);
- copy-temp: `COPY` into a temporary table, then one `UPDATE … FROM` it (not usable inside a
  pipelined transaction, and a temporary table per connection).

    .venv/bin/python bench/batched_writes.py
"""

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

ROWS = 256
ROUNDS = 30
TABLE = "strata_bench_batched_writes"
UPDATE = f"UPDATE {TABLE} SET status = %s, total = total + %s, n = n + %s, at = %s WHERE id = %s"
ARRAYS = "{p}::uuid[], {p}::text[], {p}::bigint[], {p}::int[], {p}::timestamptz[]"
FROM_ARRAYS = (
    f"UPDATE {TABLE} t SET status = v.status, total = v.total, n = v.n, at = v.at"
    " FROM unnest({arrays}) AS v(id, status, total, n, at) WHERE t.id = v.id"
)

Conn = psycopg.Connection[tuple[object, ...]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    ids = [uuid.uuid4() for _ in range(ROWS)]
    now = datetime.now(UTC)
    rows = [["b", 5, 1, now, row_id] for row_id in ids]
    columns: list[list[object]] = [list(ids), ["b"] * ROWS, [5] * ROWS, [1] * ROWS, [now] * ROWS]

    def per_row(conn: Conn) -> None:
        with conn.pipeline(), conn.transaction():
            for row in rows:
                conn.cursor().execute(UPDATE, row)

    def executemany(conn: Conn) -> None:
        with conn.pipeline(), conn.transaction():
            conn.cursor().executemany(UPDATE, rows)

    def unnest(placeholder: str) -> Callable[[Conn], None]:
        statement = FROM_ARRAYS.format(arrays=ARRAYS.format(p=placeholder))

        def run(conn: Conn) -> None:
            with conn.pipeline(), conn.transaction():
                conn.cursor().execute(statement, columns)

        return run

    def copy_temp(conn: Conn) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS batched_rows (id uuid, status text,"
                " total bigint, n int, at timestamptz) ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY batched_rows FROM STDIN") as copy:
                for row_id in ids:
                    copy.write_row([row_id, "b", 5, 1, now])
            cur.execute(
                f"UPDATE {TABLE} t SET status = v.status, total = v.total, n = v.n, at = v.at"
                " FROM batched_rows v WHERE t.id = v.id"
            )

    methods: dict[str, Callable[[Conn], None]] = {
        "per-row": per_row,
        "executemany": executemany,
        "unnest-text": unnest("%s"),
        "unnest-binary": unnest("%b"),
        "copy-temp": copy_temp,
    }
    with psycopg.connect(args.pg) as conn:
        _create(conn, columns)
        try:
            for name, method in methods.items():
                cpu, wall = _measure(conn, method)
                print(f"{name:14s} client CPU {cpu:6.1f} µs/row   wall {wall:6.1f} µs/row")
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            conn.commit()


def _create(conn: Conn, columns: list[list[object]]) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (id uuid PRIMARY KEY, status text NOT NULL,"
        " total bigint NOT NULL, n int NOT NULL, at timestamptz)"
    )
    # the table's columns are in the arrays' order: (id, status, total, n, at)
    fill = f"INSERT INTO {TABLE} SELECT * FROM unnest({ARRAYS.format(p='%s')})"
    conn.execute(fill, columns)
    conn.commit()


def _measure(conn: Conn, method: Callable[[Conn], None]) -> tuple[float, float]:
    for _ in range(3):
        method(conn)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(ROUNDS):
        method(conn)
    per_row = 1e6 / ROUNDS / ROWS
    return (time.process_time() - cpu) * per_row, (time.perf_counter() - wall) * per_row


if __name__ == "__main__":
    main()
