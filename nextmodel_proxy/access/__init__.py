"""Who may ask and how much: auth (key -> principal), keys in SQLite, per-key rate limits, and budgets
(definitions and periods in budget_store, in-memory reserve/settle in budgets). rules holds the input rules
for keys and budgets that the admin API, the CLI and providers.yaml share."""
