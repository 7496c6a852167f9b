"""What people look at: pages, templates and static assets. No business logic: pages call the APIs.

The cloud serves these under ``/`` and ``/static``; the hub serves the display page.
"""
