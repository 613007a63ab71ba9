"""notifier: an alert daemon for people who trade through intent-based swaps."""

__all__ = ["__version__"]

__version__ = "0.1.0"
