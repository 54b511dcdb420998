"""Notifications (kombu): entities declared with kombu's defaults (durable=True)."""
from kombu import Connection, Exchange, Producer, Queue, binding

notify = Exchange("notify", type="direct")
events = Exchange("events", "topic", durable=False)

email = Queue("notify.email", exchange=notify, routing_key="email", message_ttl=60,
              queue_arguments={"x-owner": "notifications"})
sms = Queue("notify.sms", notify, "sms", message_ttl=30, max_length=500)
digest = Queue("notify.digest", bindings=[binding(events, routing_key="user.#"),
                                          binding(notify, routing_key="digest")])
temp = Queue("notify.temp", exclusive=True)


def send(connection: Connection, body):
    producer = Producer(connection.channel())
    producer.publish(body, exchange=notify, routing_key="email", declare=[email])
    producer.publish(body, exchange="notify", routing_key="push")
