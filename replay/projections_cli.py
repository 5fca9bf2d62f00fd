"""`replay rebuild | projections | dlq`: projection rebuilds, their state, and dead letters."""
