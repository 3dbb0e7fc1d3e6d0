"""``python -m include.stackoverflow``: see :mod:`include.stackoverflow.cli`."""

from include.stackoverflow.cli import main

raise SystemExit(main())
