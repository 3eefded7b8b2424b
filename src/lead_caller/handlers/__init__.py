"""Thin Lambda handlers: they translate events and wire modules, nothing more."""
