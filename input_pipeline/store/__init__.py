"""The random-access frame store: ingest from any format (or the synthetic default), read, inspect, crop."""
