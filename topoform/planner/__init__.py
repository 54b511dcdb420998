"""topoform.planner."""
