-- One database per service that owns relational state (SPEC §2: each service owns its data).
-- Runs once, when the PostgreSQL volume is initialised (docker-entrypoint-initdb.d).
-- measurement keeps its state in ClickHouse and has no database here.
CREATE DATABASE planning;
CREATE DATABASE execution;
CREATE DATABASE notifier;
