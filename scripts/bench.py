#!/usr/bin/env python3
"""Entry point of the bench: ``opref.bench`` does the work (see its docstring or ``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opref.bench import main

if __name__ == "__main__":
    sys.exit(main())
