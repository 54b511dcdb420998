#!/usr/bin/env python
"""Tutorial 1, "Hello World!": the producer."""
from connection import connect

connection = connect()
channel = connection.channel()

channel.queue_declare(queue='hello')

channel.basic_publish(exchange='', routing_key='hello', body='Hello World!')
print(" [x] Sent 'Hello World!'")
connection.close()
