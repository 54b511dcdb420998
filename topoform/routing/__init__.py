"""topoform.routing."""
