"""A package of custom Functions that nobody registered (but one), for `fuzzgrad scan`.

One module per contract family (elementwise, broadcasting, matrix, a ``dim`` argument, a forward
autograd cannot differentiate); in each, a correct Function and a twin with a planted bug that
the scan must catch under the contract it infers. `unknown` holds a Function whose contract
cannot be inferred, `registered` one that is registered (registration coverage), and `broken` a
module that fails to import (reported, not fatal).
"""
