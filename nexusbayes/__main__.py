"""``python -m nexusbayes``: the same as the ``nexusbayes`` command."""

import sys

from nexusbayes.cli import main

if __name__ == "__main__":
    sys.exit(main())
