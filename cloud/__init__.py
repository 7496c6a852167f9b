"""The cloud service: stores readings, prices them, and serves every channel."""
