// The notifier (Node, amqplib): a server-named queue per instance, bound to fulfilled orders.
const amqp = require('amqplib');

const EXCHANGE = 'shop.orders';

async function main() {
  const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://localhost');
  const channel = await connection.createChannel();
  await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, EXCHANGE, 'order.fulfilled');
  await channel.consume(queue, (msg) => {
    console.log('notify customer', msg.content.toString());
    channel.ack(msg);
  });
  // a ping for the monitoring tap, which may not be running: may reach no queue
  channel.publish(EXCHANGE, 'notifier.started', Buffer.from('{}')); // topoform: unroutable-ok
}

main();
