"""Trading: the pure AMM and position arithmetic, the reference model, and the Lua trade wrappers."""
