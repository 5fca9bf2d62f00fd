"""Projectors: fold the event log into read models, exactly once in effect.

- `model`, `ops`: what a projection is (SQL statements per event, or document operations);
- `models/`: the projection code of the read models of docs/read-models.md (which projections
  run is the contexts' declarations' to say: `models.all_projections` asks the registry);
- `sql_target`, `redis_target`, `targets`: where the models are written (PostgreSQL or SQLite
  through `readmodels.sql`; Redis through one Lua call per event, keys of `readmodels.keys`);
- `engine`: batches, checkpoints, poison events and parking; `dead_letters`, `admin`: the parked
  events and the operations on them (list, show, retry, skip);
- `consumers` + `stack` + `main` (stack mode: JetStream consumers, the `strata-projector`
  process) and `embedded` (SQLite stores tailed inside the API process) feed the engine;
  `catchup` folds a store's log directly (embedded mode, backfill, rebuilds);
- `dump`: canonical dumps of read models, to check a rebuild against live.
"""
