"""`python -m binance_sim`: the same as the `binance_sim` CLI."""

import sys

from binance_sim.cli import main

sys.exit(main())
