"""Slipway Studio: from a model file on disk to a running, measured, monitored service."""

__version__ = "0.1.0"
