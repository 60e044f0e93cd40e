"""The flusher role's work: the outbox and the fold (flusher), mark-to-market of the leaderboards
and the liquidation sweep (marks); features above the store (docs/architecture.md)."""
