"""privrec.server_stub: the aggregation server (HTTP API, SQLite state, secure aggregation, DP noise and ledger)."""
