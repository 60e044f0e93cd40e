"""FTL auth."""
