// What the Curator peers (CuratorPeer.java, CuratorDiscoveryPeer.java) share: the line protocol
// on stdin/stdout, the client with its `connect` and `disconnect` commands, background work and
// small formatting helpers. recipes/tests/common/java_peer.rs compiles it together with each peer.
//
// One command per line on stdin; every answer and event is one line on stdout, starting with
// READY. Any failure is reported as `ERROR <command> <exception>`. A peer exits on `quit` or when
// stdin closes, after closing everything it holds.
//
// Commands every peer has, besides `connect`, `disconnect` and `release <tag>`:
//   sync                                -> SYNCED   (two syncs through the client, one after the other)
//   watches                             -> WATCHES <kind>:<path> ...   (after a `sync`: the client's
//                                          watches, kind data, exist or child, paths without the chroot)

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.imps.ProtectedUtils;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooKeeper;

final class PeerIo {
    static final long WAIT_SECONDS = 30;

    private PeerIo() {}

    interface Handler {
        void handle(String[] a) throws Exception;
    }

    interface Work {
        void run() throws Exception;
    }

    /** The client of the last `connect` (null before it and after `disconnect`). */
    static volatile CuratorFramework client;
    /** What `release <tag>` releases: the locks hold() holds, by tag. */
    private static final Map<String, CountDownLatch> held = new ConcurrentHashMap<>();

    interface NodeName {
        String get() throws Exception;
    }

    /**
     * Reads commands until `quit` or the end of stdin, then closes everything and exits. Handles
     * `connect` and `disconnect` (closing held locks, the peer's recipes, then the old client,
     * first) and `release <tag>` itself, and passes every other command to the handler.
     */
    static void serve(Handler handler, Runnable closeRecipes) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        out("READY");
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] a = line.split(" ");
            if (a[0].equals("quit")) {
                break;
            }
            try {
                switch (a[0]) {
                    case "connect":
                        closeAll(closeRecipes);
                        client = connect(a[1]);
                        break;
                    case "disconnect":
                        closeAll(closeRecipes);
                        out("DISCONNECTED");
                        break;
                    case "release":
                        held.remove(a[1]).countDown();
                        break;
                    case "sync":
                        sync(client);
                        out("SYNCED");
                        break;
                    case "watches":
                        out("WATCHES" + watches(client));
                        break;
                    default:
                        handler.handle(a);
                }
            } catch (Throwable t) {
                out("ERROR " + a[0] + " " + t.toString().replace('\n', ' '));
            }
        }
        closeAll(closeRecipes);
        System.exit(0);
    }

    private static void closeAll(Runnable closeRecipes) {
        for (CountDownLatch release : held.values()) {
            release.countDown();
        }
        held.clear();
        closeRecipes.run();
        CuratorFramework c = client;
        client = null;
        if (c != null) {
            c.close();
        }
    }

    /**
     * `connect <connect-string>`: a started, connected client (else an exception), reporting
     * STATE <Curator connection state> on every change; answers CONNECTED <session id hex>.
     */
    static CuratorFramework connect(String connectString) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(10_000)
                .connectionTimeoutMs(10_000)
                .retryPolicy(new ExponentialBackoffRetry(100, 3))
                .build();
        c.getConnectionStateListenable().addListener((cl, state) -> out("STATE " + state));
        c.start();
        if (!c.blockUntilConnected((int) WAIT_SECONDS, TimeUnit.SECONDS)) {
            c.close();
            throw new IllegalStateException("not connected to " + connectString);
        }
        out("CONNECTED " + Long.toHexString(c.getZookeeperClient().getZooKeeper().getSessionId()));
        return c;
    }

    /**
     * Returns once everything the server told this client before the call has been handled by
     * the client's event thread, and so have the replies to what those handlers asked for in turn
     * (their first round trip): a sync, whose callback runs on the event thread after every event
     * that arrived before its reply, then a second one, sent after the handlers' requests.
     */
    static void sync(CuratorFramework c) throws Exception {
        ZooKeeper zk = c.getZookeeperClient().getZooKeeper();
        for (int i = 0; i < 2; i++) {
            CountDownLatch done = new CountDownLatch(1);
            zk.sync("/", (rc, path, ctx) -> done.countDown(), null);
            if (!done.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("sync: no answer within " + WAIT_SECONDS + " s");
            }
        }
    }

    /**
     * ` <kind>:<path>` for every watch the client holds after a {@link #sync}: a recipe waiting on
     * a node shows here (a data watch from `exists` or `getData` on a node that exists, an exist
     * watch on one that does not, a child watch from `getChildren`). ZooKeeper keeps these lists
     * protected; they are read by reflection.
     */
    static String watches(CuratorFramework c) throws Exception {
        sync(c);
        ZooKeeper zk = c.getZookeeperClient().getZooKeeper();
        StringBuilder sb = new StringBuilder();
        String[][] kinds = {{"data", "getDataWatches"}, {"exist", "getExistWatches"}, {"child", "getChildWatches"}};
        for (String[] kind : kinds) {
            java.lang.reflect.Method list = ZooKeeper.class.getDeclaredMethod(kind[1]);
            list.setAccessible(true);
            @SuppressWarnings("unchecked")
            List<String> paths = (List<String>) list.invoke(zk);
            for (String path : paths) {
                sb.append(' ').append(kind[0]).append(':').append(path);
            }
        }
        return sb.toString();
    }

    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /**
     * Acquires mutex on its own thread `<what>-<tag>` (a Curator lock must be released by the
     * thread that acquired it): ACQUIRED <tag> <node name>, then RELEASED <tag> after
     * `release <tag>` (or when everything closes).
     */
    static void hold(String what, String tag, InterProcessMutex mutex, NodeName node) {
        CountDownLatch release = new CountDownLatch(1);
        held.put(tag, release);
        background(what + "-" + tag, () -> {
            if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException(what + " " + tag + " timed out");
            }
            out("ACQUIRED " + tag + " " + node.get());
            try {
                release.await();
            } finally {
                mutex.release();
                out("RELEASED " + tag);
            }
        });
    }

    /** Runs work on a daemon thread, reporting its failure as ERROR <name> <exception>. */
    static void background(String name, Work work) {
        Thread t = new Thread(() -> {
            try {
                work.run();
            } catch (Throwable e) {
                out("ERROR " + name + " " + e.toString().replace('\n', ' '));
            }
        }, name);
        t.setDaemon(true);
        t.start();
    }

    /**
     * `<head> <path> <name>:<protected>:<hex data> ...` for the children of path in the given
     * order (children gone meanwhile left out), protected as Curator's ProtectedUtils judges it.
     */
    static String nodesLine(String head, CuratorFramework client, String path, List<String> children)
            throws Exception {
        StringBuilder sb = new StringBuilder(head + " " + path);
        for (String child : children) {
            byte[] data;
            try {
                data = client.getData().forPath(path + "/" + child);
            } catch (KeeperException.NoNodeException e) {
                continue;
            }
            sb.append(' ').append(child).append(':').append(ProtectedUtils.isProtectedZNode(child))
                    .append(':').append(hex(data));
        }
        return sb.toString();
    }

    static long micros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    static String name(String path) {
        return path.substring(path.lastIndexOf('/') + 1);
    }

    /** The bytes of lowercase hex; `-` is empty. */
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

    /** Raw bytes as queue items, as Corral's BytesSerializer. */
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

    static String hex(byte[] data) {
        StringBuilder sb = new StringBuilder();
        if (data != null) {
            for (byte b : data) {
                sb.append(String.format("%02x", b & 0xff));
            }
        }
        return sb.toString();
    }
}
