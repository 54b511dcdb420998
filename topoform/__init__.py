"""topoform: topology-as-code and migrations for RabbitMQ."""

__version__ = "0.1.0"
