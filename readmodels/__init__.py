"""The read-model contract: what projectors write and the read API reads (docs/read-models.md).

- `catalog`: every read model (`ReadModel`: name, version, contexts, shape, tables);
- `tables`, `schema`: the relational models' tables and the tables every read database has;
- `keys`: the Redis key layout and the document keys;
- `documents`: the document-shaped models in SQL (`rm_hashes`, `rm_sorted_sets`);
- `checkpoints`: `rm_checkpoints`, the Redis checkpoint keys' reads, the announcements;
- `versions`: versions side by side, the active pointer `rm_active`, the registry;
- `sql`: the one SQL layer (PostgreSQL and SQLite) both sides use; `formats`: stored values.

It imports neither `projections` nor `read_api`: they meet here.
"""
