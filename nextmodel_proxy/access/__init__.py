"""Who may ask and how much: auth (key -> principal), keys in SQLite, per-key rate limits, and budgets
(definitions and periods in budget_store, in-memory reserve/settle in budgets)."""
