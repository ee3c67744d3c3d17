"""The model specification (TOML): its tables, their limits, reading and writing it."""
