"""Customer state: the identity graph and the profiles of the single customer view."""

from state.hashing import Hasher, IdentifierHasher, PlainIdentifiers
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileDelta, ProfileRules, delta_for
from state.redis_store import RedisProfileStore
from state.store import (
    Conflict,
    ErasedReport,
    IdentityPolicy,
    Merge,
    ProfileStore,
    ResolveRequest,
    ResolveResult,
    new_customer_id,
)

__all__ = [
    "Conflict",
    "ErasedReport",
    "Hasher",
    "IdentifierHasher",
    "IdentityPolicy",
    "MemoryProfileStore",
    "Merge",
    "PlainIdentifiers",
    "ProfileDelta",
    "ProfileRules",
    "ProfileStore",
    "RedisProfileStore",
    "ResolveRequest",
    "ResolveResult",
    "delta_for",
    "new_customer_id",
]
