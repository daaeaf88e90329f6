"""``python -m benchmarks``: the full-pipeline benchmark (the same as ``cxstream-bench``)."""

import sys

from benchmarks.run import main

sys.exit(main())
