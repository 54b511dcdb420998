"""Shared by the tutorial programs: the broker URL comes from AMQP_URL (the tests point it at a vhost)."""
import os

import pika


def connect():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
    return pika.BlockingConnection(pika.URLParameters(url))
