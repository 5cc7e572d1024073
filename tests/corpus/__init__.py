"""Meta-test corpus: Functions with planted gradient bugs, and correct Functions.

Every module here registers its Functions with `fuzzgrad.register` when imported. The buggy
modules carry ``planted={"property": ..., "bug_class": ..., "needs": ...}`` in each target's
options (what must catch the bug, what kind of mistake it is, and the one input factor it needs);
the correct modules must produce no failure at all.
"""
