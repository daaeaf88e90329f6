"""Customer state: the profile model now; the ProfileStore (Redis and in-memory) next."""

from state.profile import CustomerProfile

__all__ = ["CustomerProfile"]
