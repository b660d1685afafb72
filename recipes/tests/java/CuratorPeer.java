// A Curator 5.4 peer for recipes/tests/curator_interop.rs, driven over stdin/stdout.
//
// One command per line on stdin; every answer and event is one line on stdout. Long-running
// work runs on its own thread, so events of several recipes interleave; each line starts with a
// keyword and (mostly) the tag of the recipe instance it is about. Any failure is reported as
// `ERROR <command> <exception>`. The peer exits on `quit` or when stdin closes.
//
//   connect <connect-string>            -> CONNECTED <session id hex>   (closes all recipes and the old client first);
//                                          STATE <Curator connection state> on every change
//   disconnect                          -> DISCONNECTED   (closes all recipes and the client)
//   acquire <tag> <path>                -> ACQUIRED <tag> <node name>, later RELEASED <tag> after `release <tag>`
//   release <tag>
//   mutex <tag> <path> <holder> <n> <hold-ms>
//                                       -> MUTEX_STARTED <tag>, n x HELD <tag> <t0-us> <t1-us>, MUTEX_DONE <tag> <n> <violations>
//                                          (while holding: create <holder> EPHEMERAL with data <tag>, NodeExists is a
//                                          violation; check its data, delete it; VIOLATION <tag> <what> for each one)
//   nodes <path> <lock-name>            -> NODES <path> <name>:<protected>:<hex data> ...   (Curator's sorted order)
//   latch <tag> <path> <id>             -> LATCH_STARTED <tag>; LEADER <tag> / NOT_LEADER <tag> on every change
//   selector <tag> <path> <id>          -> SELECTOR_STARTED <tag>; LEADER <tag> when takeLeadership starts,
//                                          NOT_LEADER <tag> when it ends (after `stepdown <tag>`); auto-requeue
//   stepdown <tag>                      -> (the selector's takeLeadership returns)
//   participants <tag>                  -> PARTICIPANTS <tag> <id>,<id>,...   (the leader's id prefixed with '*')
//   close <tag>                         -> CLOSED <tag>   (a latch or a selector)
//   quit

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.imps.ProtectedUtils;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.LockInternals;
import org.apache.curator.framework.recipes.locks.StandardLockInternalsDriver;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class CuratorPeer {
    private static final long WAIT_SECONDS = 30;

    private static volatile CuratorFramework client;
    private static final Map<String, CountDownLatch> held = new ConcurrentHashMap<>();
    private static final Map<String, LeaderLatch> latches = new ConcurrentHashMap<>();
    private static final Map<String, LeaderSelector> selectors = new ConcurrentHashMap<>();
    private static final Map<String, Semaphore> stepDowns = new ConcurrentHashMap<>();

    private CuratorPeer() {}

    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static long micros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    static String name(String path) {
        return path.substring(path.lastIndexOf('/') + 1);
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

    /** InterProcessMutex, with the node it holds made visible. */
    static final class Mutex extends InterProcessMutex {
        Mutex(CuratorFramework client, String path) {
            super(client, path);
        }

        String heldNode() {
            return getLockPath();
        }
    }

    public static void main(String[] args) throws Exception {
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
                handle(a);
            } catch (Throwable t) {
                out("ERROR " + a[0] + " " + t.toString().replace('\n', ' '));
            }
        }
        closeAll();
        System.exit(0);
    }

    static void handle(String[] a) throws Exception {
        switch (a[0]) {
            case "connect": {
                closeAll();
                CuratorFramework c = CuratorFrameworkFactory.builder()
                        .connectString(a[1])
                        .sessionTimeoutMs(10_000)
                        .connectionTimeoutMs(10_000)
                        .retryPolicy(new ExponentialBackoffRetry(100, 3))
                        .build();
                c.getConnectionStateListenable().addListener((cl, state) -> out("STATE " + state));
                c.start();
                if (!c.blockUntilConnected((int) WAIT_SECONDS, TimeUnit.SECONDS)) {
                    c.close();
                    throw new IllegalStateException("not connected to " + a[1]);
                }
                client = c;
                out("CONNECTED " + Long.toHexString(c.getZookeeperClient().getZooKeeper().getSessionId()));
                break;
            }
            case "disconnect":
                closeAll();
                out("DISCONNECTED");
                break;
            case "acquire": {
                String tag = a[1];
                Mutex mutex = new Mutex(client, a[2]);
                CountDownLatch release = new CountDownLatch(1);
                held.put(tag, release);
                // InterProcessMutex must be released by the thread that acquired it.
                background("acquire-" + tag, () -> {
                    if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("acquire " + tag + " timed out");
                    }
                    out("ACQUIRED " + tag + " " + name(mutex.heldNode()));
                    try {
                        release.await();
                    } finally {
                        mutex.release();
                        out("RELEASED " + tag);
                    }
                });
                break;
            }
            case "release":
                held.remove(a[1]).countDown();
                break;
            case "mutex": {
                String tag = a[1];
                String path = a[2];
                String holder = a[3];
                int n = Integer.parseInt(a[4]);
                long holdMs = Long.parseLong(a[5]);
                CuratorFramework c = client;
                background("mutex-" + tag, () -> contend(c, tag, path, holder, n, holdMs));
                break;
            }
            case "nodes": {
                String path = a[1];
                List<String> children = LockInternals.getSortedChildren(client, path, a[2], new StandardLockInternalsDriver());
                StringBuilder sb = new StringBuilder("NODES " + path);
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
                out(sb.toString());
                break;
            }
            case "latch": {
                String tag = a[1];
                // NOTIFY_LEADER: close() reports notLeader (the default, SILENT, does not).
                LeaderLatch latch = new LeaderLatch(client, a[2], a[3], LeaderLatch.CloseMode.NOTIFY_LEADER);
                latch.addListener(new LeaderLatchListener() {
                    @Override
                    public void isLeader() {
                        out("LEADER " + tag);
                    }

                    @Override
                    public void notLeader() {
                        out("NOT_LEADER " + tag);
                    }
                });
                latches.put(tag, latch);
                latch.start();
                out("LATCH_STARTED " + tag);
                break;
            }
            case "selector": {
                String tag = a[1];
                Semaphore stepDown = new Semaphore(0);
                LeaderSelector selector = new LeaderSelector(client, a[2], new LeaderSelectorListenerAdapter() {
                    @Override
                    public void takeLeadership(CuratorFramework c) throws Exception {
                        out("LEADER " + tag);
                        try {
                            stepDown.acquire();
                        } finally {
                            out("NOT_LEADER " + tag);
                        }
                    }
                });
                selector.setId(a[3]);
                selector.autoRequeue();
                stepDowns.put(tag, stepDown);
                selectors.put(tag, selector);
                selector.start();
                out("SELECTOR_STARTED " + tag);
                break;
            }
            case "stepdown":
                stepDowns.get(a[1]).release();
                break;
            case "participants": {
                String tag = a[1];
                LeaderLatch latch = latches.get(tag);
                java.util.Collection<Participant> participants =
                        latch != null ? latch.getParticipants() : selectors.get(tag).getParticipants();
                List<String> ids = new ArrayList<>();
                for (Participant p : participants) {
                    ids.add((p.isLeader() ? "*" : "") + p.getId());
                }
                out("PARTICIPANTS " + tag + " " + String.join(",", ids));
                break;
            }
            case "close": {
                String tag = a[1];
                LeaderLatch latch = latches.remove(tag);
                if (latch != null) {
                    latch.close();
                } else {
                    selectors.remove(tag).close();
                }
                out("CLOSED " + tag);
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** Acquires the mutex n times; while holding, proves exclusivity with an ephemeral holder node. */
    static void contend(CuratorFramework c, String tag, String path, String holder, int n, long holdMs)
            throws Exception {
        InterProcessMutex mutex = new InterProcessMutex(c, path);
        byte[] mine = tag.getBytes(StandardCharsets.UTF_8);
        int violations = 0;
        out("MUTEX_STARTED " + tag);
        for (int i = 0; i < n; i++) {
            if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("mutex " + tag + " timed out on acquisition " + i);
            }
            long t0 = micros();
            try {
                boolean created = false;
                try {
                    c.create().withMode(CreateMode.EPHEMERAL).forPath(holder, mine);
                    created = true;
                } catch (KeeperException.NodeExistsException e) {
                    violations++;
                    out("VIOLATION " + tag + " holder-exists");
                }
                if (holdMs > 0) {
                    Thread.sleep(holdMs);
                }
                if (created) {
                    Stat stat = new Stat();
                    try {
                        byte[] data = c.getData().storingStatIn(stat).forPath(holder);
                        if (!java.util.Arrays.equals(data, mine)) {
                            violations++;
                            out("VIOLATION " + tag + " holder-replaced-by-" + new String(data, StandardCharsets.UTF_8));
                        } else {
                            c.delete().withVersion(stat.getVersion()).forPath(holder);
                        }
                    } catch (KeeperException.NoNodeException e) {
                        violations++;
                        out("VIOLATION " + tag + " holder-deleted");
                    }
                }
            } finally {
                out("HELD " + tag + " " + t0 + " " + micros());
                mutex.release();
            }
        }
        out("MUTEX_DONE " + tag + " " + n + " " + violations);
    }

    interface Work {
        void run() throws Exception;
    }

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

    static void closeAll() {
        for (CountDownLatch release : held.values()) {
            release.countDown();
        }
        held.clear();
        for (LeaderSelector s : selectors.values()) {
            s.close();
        }
        selectors.clear();
        for (Semaphore s : stepDowns.values()) {
            s.release(1000);
        }
        stepDowns.clear();
        for (LeaderLatch l : latches.values()) {
            try {
                l.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
        latches.clear();
        CuratorFramework c = client;
        client = null;
        if (c != null) {
            c.close();
        }
    }
}
