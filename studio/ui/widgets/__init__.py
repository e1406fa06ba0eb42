"""Reusable widgets: charts, drop zone, log view, schema tables, JSON views, banners, dialogs."""
