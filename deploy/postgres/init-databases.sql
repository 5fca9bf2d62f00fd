-- Database per service: each context's event store lives in its own database, and the read
-- models in another one (CQRS: separate stores).
-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
-- BEGIN contexts: databases (python -m contexts.generate)
CREATE DATABASE strata_users;
CREATE DATABASE strata_orders;
-- END contexts: databases
CREATE DATABASE strata_read;
