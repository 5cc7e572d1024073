"""fuzzgrad's built-in targets: real-world custom autograd Functions with torch and JAX references.

Each submodule registers its Functions with `fuzzgrad.register`; `fuzzgrad fuzz` with no
arguments imports every submodule of this package.
"""
