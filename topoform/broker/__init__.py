"""topoform.broker."""
