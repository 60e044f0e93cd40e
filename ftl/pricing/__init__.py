"""FTL pricing."""
