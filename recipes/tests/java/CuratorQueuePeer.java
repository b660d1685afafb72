// A Curator 5.4 queue peer for recipes/tests/curator_interop_queue.rs, driven over stdin/stdout
// (the protocol and the `connect` handshake are PeerIo.java's, compiled with this file). Items
// are raw bytes, written as lowercase hex on the line protocol. Any failure is reported as
// `ERROR <command> <exception>`.
//
//   connect <connect-string>            -> CONNECTED <session id hex>; STATE <state> on every change
//   disconnect                          -> DISCONNECTED   (closes every queue and the client)
//   put <path> <hex>                    -> PUT <path>                (DistributedQueue.put, in the foreground)
//   put_multi <path> <hex> <hex> ...    -> PUT <path>                (DistributedQueue.putMulti: one node)
//   put_priority <path> <hex> <priority> -> PUT <path>               (DistributedPriorityQueue.put)
//   put_delay <path> <hex> <epoch-ms>   -> PUT <path>                (DistributedDelayQueue.put)
//   put_id <path> <hex> <id>            -> PUT <path>                (DistributedIdQueue.put)
//   remove_id <path> <id>               -> REMOVED <path> <count>    (DistributedIdQueue.remove)
//   consume <tag> <kind> <path> <lock-path|->
//                                       -> CONSUMING <tag>; ITEM <tag> <hex> <epoch-ms> for every item consumed
//                                          (kind: plain, priority, delay or id)
//   close <tag>                         -> CLOSED <tag>
//   offer <path> <hex>                  -> OFFERED <path>            (SimpleDistributedQueue.offer)
//   take <path>                         -> TOOK <path> <hex>         (SimpleDistributedQueue.poll, waiting up to 30 s)
//   serialize <hex> ...                 -> SERIALIZED <hex>          (Curator's ItemSerializer.serialize, by reflection)
//   quit

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.queue.DistributedDelayQueue;
import org.apache.curator.framework.recipes.queue.DistributedIdQueue;
import org.apache.curator.framework.recipes.queue.DistributedPriorityQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.MultiItem;
import org.apache.curator.framework.recipes.queue.QueueBase;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;

public final class CuratorQueuePeer {
    private static final Map<String, QueueBase<byte[]>> consumers = new ConcurrentHashMap<>();

    private CuratorQueuePeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorQueuePeer::handle, CuratorQueuePeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "put": {
                DistributedQueue<byte[]> q = producer(client, a[1]);
                try {
                    q.put(PeerIo.unhex(a[2]));
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "put_multi": {
                List<byte[]> items = new ArrayList<>();
                for (int i = 2; i < a.length; i++) {
                    items.add(PeerIo.unhex(a[i]));
                }
                Iterator<byte[]> it = items.iterator();
                DistributedQueue<byte[]> q = producer(client, a[1]);
                try {
                    q.putMulti(new MultiItem<byte[]>() {
                        @Override
                        public byte[] nextItem() {
                            return it.hasNext() ? it.next() : null;
                        }
                    });
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "consume": {
                String tag = a[1];
                QueueConsumer<byte[]> consumer = new QueueConsumer<byte[]>() {
                    @Override
                    public void consumeMessage(byte[] message) {
                        PeerIo.out("ITEM " + tag + " " + PeerIo.hex(message) + " " + System.currentTimeMillis());
                    }

                    @Override
                    public void stateChanged(CuratorFramework c, ConnectionState state) {}
                };
                QueueBuilder<byte[]> builder = QueueBuilder.builder(client, consumer, new PeerIo.Raw(), a[3]);
                if (!a[4].equals("-")) {
                    builder = builder.lockPath(a[4]);
                }
                QueueBase<byte[]> q;
                switch (a[2]) {
                    case "plain":
                        q = builder.buildQueue();
                        break;
                    case "priority":
                        q = builder.buildPriorityQueue(0);
                        break;
                    case "delay":
                        q = builder.buildDelayQueue();
                        break;
                    case "id":
                        q = builder.buildIdQueue();
                        break;
                    default:
                        throw new IllegalArgumentException("unknown queue kind " + a[2]);
                }
                q.start();
                consumers.put(tag, q);
                PeerIo.out("CONSUMING " + tag);
                break;
            }
            case "put_priority": {
                DistributedPriorityQueue<byte[]> q = builder(client, a[1]).buildPriorityQueue(0);
                q.start();
                try {
                    q.put(PeerIo.unhex(a[2]), Integer.parseInt(a[3]));
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "put_delay": {
                DistributedDelayQueue<byte[]> q = builder(client, a[1]).buildDelayQueue();
                q.start();
                try {
                    q.put(PeerIo.unhex(a[2]), Long.parseLong(a[3]));
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "put_id": {
                DistributedIdQueue<byte[]> q = builder(client, a[1]).buildIdQueue();
                q.start();
                try {
                    q.put(PeerIo.unhex(a[2]), a[3]);
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "remove_id": {
                DistributedIdQueue<byte[]> q = builder(client, a[1]).buildIdQueue();
                q.start();
                int removed;
                try {
                    removed = q.remove(a[2]);
                } finally {
                    q.close();
                }
                PeerIo.out("REMOVED " + a[1] + " " + removed);
                break;
            }
            case "close": {
                QueueBase<byte[]> q = consumers.remove(a[1]);
                if (q != null) {
                    q.close();
                }
                PeerIo.out("CLOSED " + a[1]);
                break;
            }
            case "offer":
                new SimpleDistributedQueue(client, a[1]).offer(PeerIo.unhex(a[2]));
                PeerIo.out("OFFERED " + a[1]);
                break;
            case "take": {
                byte[] item = new SimpleDistributedQueue(client, a[1]).poll(PeerIo.WAIT_SECONDS, TimeUnit.SECONDS);
                if (item == null) {
                    throw new IllegalStateException("nothing to take from " + a[1]);
                }
                PeerIo.out("TOOK " + a[1] + " " + PeerIo.hex(item));
                break;
            }
            case "serialize": {
                List<byte[]> items = new ArrayList<>();
                for (int i = 1; i < a.length; i++) {
                    items.add(PeerIo.unhex(a[i]));
                }
                Iterator<byte[]> it = items.iterator();
                MultiItem<byte[]> multi = () -> it.hasNext() ? it.next() : null;
                Class<?> serializer = Class.forName("org.apache.curator.framework.recipes.queue.ItemSerializer");
                Method serialize = serializer.getDeclaredMethod("serialize", MultiItem.class, QueueSerializer.class);
                serialize.setAccessible(true);
                byte[] bytes = (byte[]) serialize.invoke(null, multi, new PeerIo.Raw());
                PeerIo.out("SERIALIZED " + PeerIo.hex(bytes));
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** A producer-only queue builder (no consumer), putting in the foreground. */
    static QueueBuilder<byte[]> builder(CuratorFramework client, String path) {
        return QueueBuilder.builder(client, null, new PeerIo.Raw(), path).putInBackground(false);
    }

    /** A producer-only queue (no consumer), putting in the foreground. */
    static DistributedQueue<byte[]> producer(CuratorFramework client, String path) throws Exception {
        DistributedQueue<byte[]> q = builder(client, path).buildQueue();
        q.start();
        return q;
    }

    static void closeRecipes() {
        for (QueueBase<byte[]> q : consumers.values()) {
            try {
                q.close();
            } catch (Exception e) {
                PeerIo.out("ERROR close " + e);
            }
        }
        consumers.clear();
    }
}
