"""The broker fixtures give each test its own vhost, and remove it afterwards."""


def test_vhost_fixture_gives_a_usable_vhost(vhost, mgmt, amqp):
    ch = amqp.channel()
    ch.queue_declare("smoke", durable=True)
    names = [q["name"] for q in mgmt.queues(vhost)]
    assert names == ["smoke"]
