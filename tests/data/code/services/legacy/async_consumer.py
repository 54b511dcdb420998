"""pika 0.x asynchronous Channel: every method takes its callback first."""
import pika


class Consumer(object):
    EXCHANGE = 'legacy.events'
    EXCHANGE_TYPE = 'fanout'
    QUEUE = 'legacy.events.log'

    def __init__(self, url):
        self._url = url
        self._channel = None

    def setup_exchange(self, exchange_name):
        self._channel.exchange_declare(self.on_exchange_declareok, exchange_name, self.EXCHANGE_TYPE)

    def on_exchange_declareok(self, frame):
        self._channel.queue_declare(self.on_queue_declareok, self.QUEUE, durable=False, auto_delete=True)

    def on_queue_declareok(self, frame):
        self._channel.queue_bind(self.on_bindok, self.QUEUE, self.EXCHANGE)

    def on_bindok(self, frame):
        self._channel.basic_consume(self.on_message, self.QUEUE)

    def on_message(self, channel, method, properties, body):
        pass

    def start(self):
        self.setup_exchange(self.EXCHANGE)
