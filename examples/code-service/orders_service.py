"""An orders service that declares its topology at start-up (pika 1.x), as most services do.

`topoform scan examples/code-service` reads these declarations without running anything;
`topoform check-code examples/code-service -f examples/code-service/topology.yaml` keeps
them in agreement with the topology file (docs/scan.md).
"""
import json
import os

import pika

EXCHANGE = "shop.orders"
DEAD_LETTERS = EXCHANGE + ".dlx"
QUEUE = "shop.orders.fulfilment"


def declare(channel):
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(exchange=DEAD_LETTERS, exchange_type="fanout", durable=True)
    arguments = {"x-queue-type": "quorum", "x-dead-letter-exchange": DEAD_LETTERS, "x-delivery-limit": 5}
    channel.queue_declare(queue=QUEUE, durable=True, arguments=arguments)
    for key in ("order.created", "order.paid"):
        channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key=key)
    channel.queue_declare(queue=f"{QUEUE}.dead", durable=True)
    channel.queue_bind(queue=f"{QUEUE}.dead", exchange=DEAD_LETTERS)


def on_order(channel, method, properties, body):
    order = json.loads(body)
    channel.basic_publish(exchange=EXCHANGE, routing_key="order.fulfilled", body=json.dumps(order))
    channel.basic_ack(method.delivery_tag)


def main():
    connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")))
    channel = connection.channel()
    declare(channel)
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume(queue=QUEUE, on_message_callback=on_order)
    channel.start_consuming()


if __name__ == "__main__":
    main()
