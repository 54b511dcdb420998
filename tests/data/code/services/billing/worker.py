"""Billing service (aio-pika)."""
import asyncio
import os

import aio_pika
from aio_pika import ExchangeType, Message

EXCHANGE_NAME = "billing"


async def main() -> None:
    connection = await aio_pika.connect_robust(os.environ["AMQP_URL"])
    channel = await connection.channel()

    billing = await channel.declare_exchange(EXCHANGE_NAME, ExchangeType.TOPIC, durable=True)
    orders = await channel.get_exchange("orders")
    await billing.bind(orders, routing_key="order.paid")

    invoices = await channel.declare_queue(
        "billing.invoices", durable=True,
        arguments={"x-queue-type": "quorum", "x-delivery-limit": 5})
    await invoices.bind(billing, routing_key="order.paid")
    await invoices.bind(billing)  # aio-pika binds with the queue's name when no key is given

    audit = await channel.declare_queue("orders.audit", durable=True, arguments={"x-message-ttl": 30000})
    await audit.bind("orders", "order.#")

    events = await channel.declare_queue(exclusive=True)
    await events.bind(billing, routing_key="invoice.*")

    await billing.publish(Message(b"{}"), routing_key="invoice.created")
    await channel.default_exchange.publish(Message(b"{}"), routing_key=invoices.name)
    await invoices.consume(print)


if __name__ == "__main__":
    asyncio.run(main())
