"""Planted bugs, part 4: bugs that live only past 64 elements along a dim (tiles and blocks).

The specs name no size: reaching a row of more than 64 elements is the shape strategy's job. See
`buggy` for the meaning of ``planted``.
"""

import importlib

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._blocked import REFERENCES, BlockedLogSumExpBase
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _blocked = importlib.import_module("_blocked")
    REFERENCES, BlockedLogSumExpBase = _blocked.REFERENCES, _blocked.BlockedLogSumExpBase


@fg.register(
    **REFERENCES,
    planted={
        "property": "forward",
        "bug_class": "blocked rescaling",
        "needs": "size>64",
        "max_elements": 65,
    },
)
class BlockedLogSumExpStaleScale(BlockedLogSumExpBase):
    """Online logsumexp in blocks of 64 that adds each block's sum at the block's own maximum
    instead of rescaling it to the running one: wrong once a row spans two blocks."""

    rescale_block = False
