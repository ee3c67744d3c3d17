"""Turning a model into draws: the one sampling path, compiling (and caching) it, and what follows sampling."""
