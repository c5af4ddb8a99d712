"""A Binance look-alike HTTP server for tests, demos and rehearsals.

It serves the public metadata endpoints from a real exchangeInfo snapshot and lets a test
change that snapshot, inject failures and read what was asked, over HTTP or in-process. It
depends on nothing else in the project, so it can stand in for Binance anywhere.
"""
