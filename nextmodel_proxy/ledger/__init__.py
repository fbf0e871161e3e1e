"""The ledger, the system of record: schema and migrations, the single writer thread (group commit, hash
chain), receipt rows, read queries and exports, spend totals from rollups, and compare (reprice the workload)."""
