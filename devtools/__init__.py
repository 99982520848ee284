"""Development helpers, run from a checkout (`python -m devtools.<module>`); not installed."""
