"""Mutation testing of fuzzgrad: plant bugs in the built-in targets' backward passes and
measure how fast fuzzgrad and the gradcheck baselines find them (``python -m bench.mutants.run``).
"""
