"""``python -m suanli`` runs the ``suanli`` command line."""

import sys

from .cli import main

sys.exit(main())
