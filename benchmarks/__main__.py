import sys

from benchmarks._runner import main

sys.exit(main())
