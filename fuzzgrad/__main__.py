import sys

from fuzzgrad.integrations.cli import main

sys.exit(main())
