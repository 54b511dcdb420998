// Gateway (Node, amqplib callback API): declares its exchange and a reply queue.
const amqp = require('amqplib/callback_api');

const EXCHANGE = 'orders';
const PREFIX = 'gateway';

amqp.connect(process.env.AMQP_URL, function (error0, connection) {
  if (error0) throw error0;
  connection.createChannel(function (error1, channel) {
    if (error1) throw error1;
    channel.assertExchange(EXCHANGE, 'topic', { durable: true });
    channel.assertQueue(`${PREFIX}.requests`, { durable: true, messageTtl: 60000, deadLetterExchange: 'orders.dlx' });
    channel.bindQueue(PREFIX + '.requests', EXCHANGE, 'order.created');
    channel.assertQueue('', { exclusive: true }, function (error2, q) {
      ['order.shipped', 'order.delivered'].forEach((key) => {
        channel.bindQueue(q.queue, EXCHANGE, key);
      });
      channel.consume(q.queue, (msg) => console.log(msg.content.toString()), { noAck: true });
    });
    channel.publish(EXCHANGE, 'order.created', Buffer.from('{}'));
    channel.sendToQueue('orders.audit', Buffer.from('{}'));
    channel.publish(EXCHANGE, process.env.ROUTING_KEY, Buffer.from('{}'));
  });
});
