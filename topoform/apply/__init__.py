"""topoform.apply."""
