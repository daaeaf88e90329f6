"""``python -m benchmarks``: the full-pipeline benchmark (``make bench``)."""

import sys

from benchmarks.run import main

sys.exit(main())
