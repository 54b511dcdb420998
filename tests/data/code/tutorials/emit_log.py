#!/usr/bin/env python
"""Tutorial 3, publish/subscribe: the log emitter (fanout exchange)."""
import sys

from connection import connect

connection = connect()
channel = connection.channel()

channel.exchange_declare(exchange='logs', exchange_type='fanout')

message = ' '.join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange='logs', routing_key='', body=message)
print(f" [x] Sent {message}")
connection.close()
