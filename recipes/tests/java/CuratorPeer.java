// A Curator 5.4 peer for recipes/tests/curator_interop.rs, driven over stdin/stdout.
//
// One command per line on stdin; every answer and event is one line on stdout (the protocol and
// the `connect` handshake are PeerIo.java's, compiled with this file). Long-running work runs on
// its own thread, so events of several recipes interleave; each line starts with a keyword and
// (mostly) the tag of the recipe instance it is about. Any failure is reported as
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
//   selector <tag> <path> <id> [once]   -> SELECTOR_STARTED <tag>; LEADER <tag> when takeLeadership starts,
//                                          NOT_LEADER <tag> when it ends (after `stepdown <tag>` or an interrupt);
//                                          auto-requeue unless `once`
//   stepdown <tag>                      -> (the selector's takeLeadership returns)
//   interrupt <tag>                     -> INTERRUPTED <tag>   (the selector's interruptLeadership())
//   requeue <tag>                       -> REQUEUED <tag> <true|false>   (the selector's requeue())
//   participants <tag>                  -> PARTICIPANTS <tag> <id>,<id>,...   (the leader's id prefixed with '*')
//   close <tag>                         -> CLOSED <tag>   (a latch or a selector)
//   quit

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.LockInternals;
import org.apache.curator.framework.recipes.locks.StandardLockInternalsDriver;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class CuratorPeer {
    private static final long WAIT_SECONDS = PeerIo.WAIT_SECONDS;

    private static final Map<String, LeaderLatch> latches = new ConcurrentHashMap<>();
    private static final Map<String, LeaderSelector> selectors = new ConcurrentHashMap<>();
    private static final Map<String, Semaphore> stepDowns = new ConcurrentHashMap<>();

    private CuratorPeer() {}

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
        PeerIo.serve(CuratorPeer::handle, CuratorPeer::closeRecipes);
    }

    /** Every command but connect, disconnect and quit (PeerIo's). */
    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "acquire": {
                Mutex mutex = new Mutex(client, a[2]);
                PeerIo.hold("acquire", a[1], mutex, () -> PeerIo.name(mutex.heldNode()));
                break;
            }
            case "mutex": {
                String tag = a[1];
                String path = a[2];
                String holder = a[3];
                int n = Integer.parseInt(a[4]);
                long holdMs = Long.parseLong(a[5]);
                PeerIo.background("mutex-" + tag, () -> contend(client, tag, path, holder, n, holdMs));
                break;
            }
            case "nodes": {
                String path = a[1];
                List<String> children = LockInternals.getSortedChildren(client, path, a[2], new StandardLockInternalsDriver());
                PeerIo.out(PeerIo.nodesLine("NODES", client, path, children));
                break;
            }
            case "latch": {
                String tag = a[1];
                // NOTIFY_LEADER: close() reports notLeader (the default, SILENT, does not).
                LeaderLatch latch = new LeaderLatch(client, a[2], a[3], LeaderLatch.CloseMode.NOTIFY_LEADER);
                latch.addListener(new LeaderLatchListener() {
                    @Override
                    public void isLeader() {
                        PeerIo.out("LEADER " + tag);
                    }

                    @Override
                    public void notLeader() {
                        PeerIo.out("NOT_LEADER " + tag);
                    }
                });
                latches.put(tag, latch);
                latch.start();
                PeerIo.out("LATCH_STARTED " + tag);
                break;
            }
            case "selector": {
                String tag = a[1];
                Semaphore stepDown = new Semaphore(0);
                LeaderSelector selector = new LeaderSelector(client, a[2], new LeaderSelectorListenerAdapter() {
                    @Override
                    public void takeLeadership(CuratorFramework c) throws Exception {
                        PeerIo.out("LEADER " + tag);
                        try {
                            stepDown.acquire();
                        } finally {
                            PeerIo.out("NOT_LEADER " + tag);
                        }
                    }
                });
                selector.setId(a[3]);
                if (a.length < 5 || !a[4].equals("once")) {
                    selector.autoRequeue();
                }
                stepDowns.put(tag, stepDown);
                selectors.put(tag, selector);
                selector.start();
                PeerIo.out("SELECTOR_STARTED " + tag);
                break;
            }
            case "stepdown":
                stepDowns.get(a[1]).release();
                break;
            case "interrupt":
                selectors.get(a[1]).interruptLeadership();
                PeerIo.out("INTERRUPTED " + a[1]);
                break;
            case "requeue":
                PeerIo.out("REQUEUED " + a[1] + " " + selectors.get(a[1]).requeue());
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
                PeerIo.out("PARTICIPANTS " + tag + " " + String.join(",", ids));
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
                PeerIo.out("CLOSED " + tag);
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
        PeerIo.out("MUTEX_STARTED " + tag);
        for (int i = 0; i < n; i++) {
            if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("mutex " + tag + " timed out on acquisition " + i);
            }
            long t0 = PeerIo.micros();
            try {
                boolean created = false;
                try {
                    c.create().withMode(CreateMode.EPHEMERAL).forPath(holder, mine);
                    created = true;
                } catch (KeeperException.NodeExistsException e) {
                    violations++;
                    PeerIo.out("VIOLATION " + tag + " holder-exists");
                }
                if (holdMs > 0) {
                    // A hold inside the lock: widens the window a second holder would show in (the marker check).
                    Thread.sleep(holdMs);
                }
                if (created) {
                    Stat stat = new Stat();
                    try {
                        byte[] data = c.getData().storingStatIn(stat).forPath(holder);
                        if (!java.util.Arrays.equals(data, mine)) {
                            violations++;
                            PeerIo.out("VIOLATION " + tag + " holder-replaced-by-"
                                    + new String(data, StandardCharsets.UTF_8));
                        } else {
                            c.delete().withVersion(stat.getVersion()).forPath(holder);
                        }
                    } catch (KeeperException.NoNodeException e) {
                        violations++;
                        PeerIo.out("VIOLATION " + tag + " holder-deleted");
                    }
                }
            } finally {
                PeerIo.out("HELD " + tag + " " + t0 + " " + PeerIo.micros());
                mutex.release();
            }
        }
        PeerIo.out("MUTEX_DONE " + tag + " " + n + " " + violations);
    }

    /** Closes every recipe (PeerIo closes the client next). */
    static void closeRecipes() {
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
    }
}
