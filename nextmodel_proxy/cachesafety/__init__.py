"""CacheSafety Bench: how often would a caching strategy replay an answer to a request it does not answer.

dataset (the JSONL contract and the shipped trap file) -> strategies (exact = the proxy's own key, and the
looser rules other caches use) -> metrics -> report (terminal table, JSON, self-contained HTML);
live (the real proxy end to end) and ledger_scan (the user's own traffic) feed the same report.
"""
