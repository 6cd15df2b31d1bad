#!/usr/bin/env python3
"""scripts/gpu-check's entry point: the check itself is :mod:`opref.gpu` (README, "Validating on a GPU")."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opref.gpu.command import main

if __name__ == "__main__":
    sys.exit(main())
