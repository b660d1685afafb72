// A Curator 5.4 peer for recipes/tests/queue_sharder.rs: Curator's QueueSharder over producer-only
// DistributedQueues of raw bytes, driven over stdin/stdout (the protocol and
// `connect`/`disconnect` are PeerIo.java's).
//
//   sharder <path> <leader path> <threshold> <check ms> <max>   -> SHARDER_STARTED
//   shards                                                      -> SHARDS <count> <sorted paths...>
//   put <hex>                                                   -> PUT <shard path>   (getQueue().put)
//   closesharder                                                -> SHARDER_CLOSED
//   quit

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueSharder;
import org.apache.curator.framework.recipes.queue.QueueSharderPolicies;

public final class CuratorSharderPeer {
    private static volatile QueueSharder<byte[], DistributedQueue<byte[]>> sharder;

    private CuratorSharderPeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorSharderPeer::handle, CuratorSharderPeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        switch (a[0]) {
            case "sharder": {
                QueueSharderPolicies policies = QueueSharderPolicies.builder()
                        .newQueueThreshold(Integer.parseInt(a[3]))
                        .thresholdCheckMs(Integer.parseInt(a[4]))
                        .maxQueues(Integer.parseInt(a[5]))
                        .build();
                QueueSharder<byte[], DistributedQueue<byte[]>> s = new QueueSharder<>(PeerIo.client,
                        (client, path) -> QueueBuilder.builder(client, null, new PeerIo.Raw(), path).buildQueue(), a[1], a[2], policies);
                s.start();
                sharder = s;
                PeerIo.out("SHARDER_STARTED");
                break;
            }
            case "shards": {
                List<String> paths = new ArrayList<>(sharder.getQueuePaths());
                Collections.sort(paths);
                PeerIo.out("SHARDS " + paths.size() + " " + String.join(" ", paths));
                break;
            }
            case "put": {
                DistributedQueue<byte[]> queue = sharder.getQueue();
                queue.put(PeerIo.unhex(a[1]));
                PeerIo.out("PUT " + queuePathOf(queue));
                break;
            }
            case "closesharder":
                closeRecipes();
                PeerIo.out("SHARDER_CLOSED");
                break;
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** The shard path of a queue the sharder handed out (DistributedQueue keeps it private). */
    static String queuePathOf(DistributedQueue<byte[]> queue) throws ReflectiveOperationException {
        java.lang.reflect.Field f = DistributedQueue.class.getDeclaredField("queuePath");
        f.setAccessible(true);
        return (String) f.get(queue);
    }

    static void closeRecipes() {
        QueueSharder<byte[], DistributedQueue<byte[]>> s = sharder;
        sharder = null;
        if (s != null) {
            try {
                s.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
    }
}
