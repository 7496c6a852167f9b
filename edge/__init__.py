"""The hub agent: one asyncio service that reads the meter, keeps everything locally and uplinks."""
