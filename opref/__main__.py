import sys

from opref.cli import main

sys.exit(main())
