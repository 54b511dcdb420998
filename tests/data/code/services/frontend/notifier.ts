// Notifier (TypeScript, amqplib promise API).
import * as amqp from 'amqplib';

const QUEUE_OPTIONS: amqp.Options.AssertQueue = { durable: true, arguments: { 'x-owner': 'frontend' } };

export async function start(url: string): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange('notify', 'direct');
  const { queue } = await channel.assertQueue('notify.email', { ...QUEUE_OPTIONS, messageTtl: 60000 } as amqp.Options.AssertQueue);
  await channel.bindQueue(queue, 'notify', 'email');
  await channel.checkExchange('orders');
  await channel.bindExchange('notify', 'orders', 'order.shipped');
  for (const kind of ['sms', 'push']) {
    await channel.assertQueue(`notify.${kind}.ts`, { durable: false, autoDelete: true });
  }
  channel.publish('notify', 'email', Buffer.from('hi')); // topoform: unroutable-ok
}
