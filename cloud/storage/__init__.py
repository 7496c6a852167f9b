"""Storage backends behind one interface (SQLite now; PostgreSQL and time-series sinks next)."""
