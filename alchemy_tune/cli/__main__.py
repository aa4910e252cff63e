"""``python -m alchemy_tune.cli``: the same as the installed ``alchemy-tune`` command."""

import sys

from alchemy_tune.cli import main

sys.exit(main())
