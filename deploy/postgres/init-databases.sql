-- Database per service: each context's event store lives in its own database.
-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
CREATE DATABASE strata_users;
CREATE DATABASE strata_orders;
