"""Orders service: declares its topology at start-up (pika 1.x) and publishes order events."""
import os

import pika

from names import AUDIT_QUEUE, DLX, EXCHANGE, RETRY_DELAY_MS
import settings

CREATED = "order.created"
PAID_QUEUE = f"{EXCHANGE}.paid"


def declare(channel):
    channel.exchange_declare(EXCHANGE, "topic", durable=True)
    channel.exchange_declare(exchange=DLX, exchange_type=pika.exchange_type.ExchangeType.fanout, durable=True)
    channel.exchange_declare("orders.internal", "direct", durable=True, internal=True)
    channel.exchange_bind(destination="orders.internal", source=EXCHANGE, routing_key="order.*")

    args = {"x-dead-letter-exchange": DLX, "x-message-ttl": 60000}
    args["x-max-length"] = 10000
    channel.queue_declare(queue=PAID_QUEUE, durable=True, arguments=args)
    channel.queue_bind(PAID_QUEUE, EXCHANGE, "order.paid")

    channel.queue_declare(AUDIT_QUEUE, False, True, False, False, {"x-message-ttl": 60000})
    channel.queue_bind(queue=AUDIT_QUEUE, exchange=EXCHANGE, routing_key="order.#")

    retry = "orders.retry"
    channel.queue_declare(retry, durable=True,
                          arguments={"x-message-ttl": RETRY_DELAY_MS, "x-dead-letter-exchange": EXCHANGE})
    channel.queue_bind(queue=retry, exchange=DLX)  # no routing key: pika binds with the queue's name

    regional = "orders." + settings.REGION
    channel.queue_declare(regional, durable=True)

    channel.queue_declare(queue=os.environ["SHARD_QUEUE"], durable=True)
    channel.queue_declare("payments.in", passive=True)


def publish(channel, order):
    channel.basic_publish(exchange=EXCHANGE, routing_key=CREATED, body=order)
    channel.basic_publish(EXCHANGE, "order.paid", order)
    channel.basic_publish(exchange=EXCHANGE, routing_key="order.cancelled." + order["id"], body=order)
    # topoform: unroutable-ok (nobody listens yet; the alternate exchange is coming)
    channel.basic_publish(exchange=EXCHANGE, routing_key="refund.requested", body=order)
    channel.basic_publish(exchange="", routing_key="payments.in", body=order)


def main():
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    channel = connection.channel()
    declare(channel)
    for key in ("order.shipped", "order.delivered"):
        channel.queue_bind(queue=AUDIT_QUEUE, exchange=EXCHANGE, routing_key=key)
    channel.basic_consume(queue=AUDIT_QUEUE, on_message_callback=print)
