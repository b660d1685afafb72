// A Curator 5.4 queue peer for recipes/tests/curator_interop_queue.rs, driven over stdin/stdout
// (the protocol and the `connect` handshake are PeerIo.java's, compiled with this file). Items
// are raw bytes, written as lowercase hex on the line protocol. Any failure is reported as
// `ERROR <command> <exception>`.
//
//   connect <connect-string>            -> CONNECTED <session id hex>; STATE <state> on every change
//   disconnect                          -> DISCONNECTED   (closes every queue and the client)
//   put <path> <hex>                    -> PUT <path>                (DistributedQueue.put, in the foreground)
//   put_multi <path> <hex> <hex> ...    -> PUT <path>                (DistributedQueue.putMulti: one node)
//   consume <tag> <path> <lock-path|->  -> CONSUMING <tag>; ITEM <tag> <hex> for every item consumed
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
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.MultiItem;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;

public final class CuratorQueuePeer {
    private static final Map<String, DistributedQueue<byte[]>> consumers = new ConcurrentHashMap<>();

    private CuratorQueuePeer() {}

    /** Raw bytes, as Corral's BytesSerializer. */
    static final class Raw implements QueueSerializer<byte[]> {
        @Override
        public byte[] serialize(byte[] item) {
            return item;
        }

        @Override
        public byte[] deserialize(byte[] bytes) {
            return bytes;
        }
    }

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorQueuePeer::handle, CuratorQueuePeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "put": {
                DistributedQueue<byte[]> q = producer(client, a[1]);
                try {
                    q.put(unhex(a[2]));
                } finally {
                    q.close();
                }
                PeerIo.out("PUT " + a[1]);
                break;
            }
            case "put_multi": {
                List<byte[]> items = new ArrayList<>();
                for (int i = 2; i < a.length; i++) {
                    items.add(unhex(a[i]));
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
                        PeerIo.out("ITEM " + tag + " " + PeerIo.hex(message));
                    }

                    @Override
                    public void stateChanged(CuratorFramework c, ConnectionState state) {}
                };
                QueueBuilder<byte[]> builder = QueueBuilder.builder(client, consumer, new Raw(), a[2]);
                if (!a[3].equals("-")) {
                    builder = builder.lockPath(a[3]);
                }
                DistributedQueue<byte[]> q = builder.buildQueue();
                q.start();
                consumers.put(tag, q);
                PeerIo.out("CONSUMING " + tag);
                break;
            }
            case "close": {
                DistributedQueue<byte[]> q = consumers.remove(a[1]);
                if (q != null) {
                    q.close();
                }
                PeerIo.out("CLOSED " + a[1]);
                break;
            }
            case "offer":
                new SimpleDistributedQueue(client, a[1]).offer(unhex(a[2]));
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
                    items.add(unhex(a[i]));
                }
                Iterator<byte[]> it = items.iterator();
                MultiItem<byte[]> multi = () -> it.hasNext() ? it.next() : null;
                Class<?> serializer = Class.forName("org.apache.curator.framework.recipes.queue.ItemSerializer");
                Method serialize = serializer.getDeclaredMethod("serialize", MultiItem.class, QueueSerializer.class);
                serialize.setAccessible(true);
                byte[] bytes = (byte[]) serialize.invoke(null, multi, new Raw());
                PeerIo.out("SERIALIZED " + PeerIo.hex(bytes));
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** A producer-only queue (no consumer), putting in the foreground. */
    static DistributedQueue<byte[]> producer(CuratorFramework client, String path) throws Exception {
        DistributedQueue<byte[]> q = QueueBuilder.builder(client, null, new Raw(), path).putInBackground(false).buildQueue();
        q.start();
        return q;
    }

    static byte[] unhex(String s) {
        if (s.equals("-")) {
            return new byte[0];
        }
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    static void closeRecipes() {
        for (DistributedQueue<byte[]> q : consumers.values()) {
            try {
                q.close();
            } catch (Exception e) {
                PeerIo.out("ERROR close " + e);
            }
        }
        consumers.clear();
    }
}
