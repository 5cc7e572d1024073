import sys

from fuzzgrad._cli import main

sys.exit(main())
