"""Routers by audience: hubs, householders, pages."""
