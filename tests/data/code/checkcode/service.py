"""A service whose declarations agree with topology.yaml (the check-code tests vary it)."""
import pika

EXCHANGE = "orders"


def setup(channel):
    channel.exchange_declare(EXCHANGE, "topic", durable=True)
    channel.queue_declare("orders.audit", durable=True, arguments={"x-message-ttl": 60000})
    channel.queue_bind("orders.audit", EXCHANGE, "order.#")
    channel.queue_declare("billing.invoices", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind("billing.invoices", EXCHANGE, "order.paid")
    result = channel.queue_declare("", exclusive=True)
    channel.queue_bind(result.method.queue, EXCHANGE, "order.*")
    channel.basic_publish(EXCHANGE, "order.paid", b"{}")
    # topoform: unroutable-ok (a metrics tap that may have no consumer)
    channel.basic_publish(EXCHANGE, "metrics", b"{}")
    channel.basic_consume("orders.audit", on_message_callback=print)
