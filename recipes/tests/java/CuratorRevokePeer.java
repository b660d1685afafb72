// A Curator 5.4 peer for recipes/tests/revocation.rs, driven over stdin/stdout (the protocol and
// the `connect` handshake are PeerIo.java's, compiled with this file): Curator's
// InterProcessMutex, revocable or not, and Curator's Revoker.
//
//   hold <tag> <path> <revocable>       -> ACQUIRED <tag> <node name>; with revocable=true the mutex is made
//                                          revocable first (InterProcessMutex.makeRevocable), and a revocation
//                                          request answers REVOKE_REQUESTED <tag> and releases the lock;
//                                          RELEASED <tag> once released (after `let-go <tag>`, or a revocation)
//   let-go <tag>                        -> (the holder releases)
//   revoke <path>                       -> REVOKE_SENT <path>   (Revoker.attemptRevoke on that lock node)
//   quit

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.Revoker;

public final class CuratorRevokePeer {
    /** What `let-go <tag>` (or a revocation) counts down: the holder thread then releases. */
    private static final Map<String, CountDownLatch> letGo = new ConcurrentHashMap<>();

    private CuratorRevokePeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorRevokePeer::handle, CuratorRevokePeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "hold": {
                String tag = a[1];
                InterProcessMutex mutex = new InterProcessMutex(client, a[2]);
                CountDownLatch release = new CountDownLatch(1);
                letGo.put(tag, release);
                if (Boolean.parseBoolean(a[3])) {
                    // Called on ZooKeeper's event thread: a Curator lock is released by the thread
                    // that holds it, so tell that one.
                    mutex.makeRevocable(m -> {
                        PeerIo.out("REVOKE_REQUESTED " + tag);
                        release.countDown();
                    });
                }
                PeerIo.background("hold-" + tag, () -> {
                    if (!mutex.acquire(PeerIo.WAIT_SECONDS, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("hold " + tag + " timed out");
                    }
                    // The holder is first in line: our own node.
                    String node = mutex.getParticipantNodes().iterator().next();
                    PeerIo.out("ACQUIRED " + tag + " " + PeerIo.name(node));
                    try {
                        release.await();
                    } finally {
                        mutex.release();
                        letGo.remove(tag);
                        PeerIo.out("RELEASED " + tag);
                    }
                });
                break;
            }
            case "let-go":
                letGo.get(a[1]).countDown();
                break;
            case "revoke":
                Revoker.attemptRevoke(client, a[1]);
                PeerIo.out("REVOKE_SENT " + a[1]);
                break;
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** Lets every holder go (PeerIo closes the client next). */
    static void closeRecipes() {
        for (CountDownLatch release : letGo.values()) {
            release.countDown();
        }
        letGo.clear();
    }
}
