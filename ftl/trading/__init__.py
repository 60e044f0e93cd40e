"""Trading: the pure AMM and position arithmetic and the Lua trade wrappers (the reference model
the tests compare the scripts with lives in tests/trading/model.py)."""
