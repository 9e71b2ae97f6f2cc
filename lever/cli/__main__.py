"""``python -m lever.cli``: the ``lever`` command."""

import sys

from . import main

sys.exit(main())
