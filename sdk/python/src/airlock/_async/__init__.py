"""The client; the async one is the source, and `_sync` is generated from it."""
