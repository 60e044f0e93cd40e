"""FTL: the backend of a World Cup 2026 fantasy trading game."""

__version__ = "0.1.0"
