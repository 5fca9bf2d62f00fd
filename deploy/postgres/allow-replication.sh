#!/usr/bin/env bash
# Run once by the postgres image when it creates the cluster (/docker-entrypoint-initdb.d): lets
# the read replica of compose.yaml (profile `read-replica`) stream the WAL over the network, with
# a password. The image's own rules admit replication from the loopback only.
set -euo pipefail
echo "host replication all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
