"""Reading bars: files (ohlcv, databento), the one file -> bars path (series), contract rolls, bar
aggregation, the session calendar, and the feature/market cache."""
