"""``fuzzgrad scan``: every custom autograd Function of a package, fuzzed with no registration.

`found` finds the Functions a package defines and which of them are registered (registration
coverage); `contract` infers an input contract for the others by trial, from ``forward``'s
signature; `command` writes the inferred registrations as a module in the report folder and
fuzzes it through the ordinary ``fuzzgrad fuzz`` path, so runner, shrinking, reproducers and
reports apply unchanged.
"""
