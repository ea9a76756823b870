"""Settings: read once from the environment and the accounts file, checked, typed."""
