"""The ws role: authenticated WebSocket subscriptions and PRICE_UPDATE fan-out."""
