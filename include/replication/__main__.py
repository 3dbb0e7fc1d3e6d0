"""``python -m include.replication plan|copy|validate``: see :mod:`include.replication.cli`."""

import sys

from include.replication.cli import main

sys.exit(main())
