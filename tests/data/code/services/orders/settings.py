import os

BROKER_URL = os.environ.get("BROKER_URL", "amqp://localhost")
REGION = os.environ["REGION"]
