"""The inventory domain: the stock ledger (reserve, release, restock, transfers) and allocation."""
