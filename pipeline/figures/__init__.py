"""Figures: one function per figure family, each returning a matplotlib Figure (saving is the caller's)."""
