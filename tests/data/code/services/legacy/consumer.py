"""A service still on pika 0.x: the old spellings of the same calls."""
import pika

EXCHANGE = 'orders'


def on_message(channel, method, properties, body):
    channel.basic_ack(method.delivery_tag)


connection = pika.BlockingConnection(pika.ConnectionParameters('localhost'))
channel = connection.channel()
channel.exchange_declare(exchange=EXCHANGE, type='topic', durable=True)
channel.queue_declare(queue='legacy.invoices', durable=True)
channel.queue_bind('legacy.invoices', EXCHANGE, 'order.paid')
channel.basic_consume(on_message, queue='legacy.invoices', no_ack=False)
channel.basic_consume(on_message, 'legacy.invoices')
