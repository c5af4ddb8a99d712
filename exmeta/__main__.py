import sys

from exmeta.cli import main

sys.exit(main())
