// A Curator 5.4 peer for recipes/tests/curator_interop_counters.rs: barriers and counters,
// driven over stdin/stdout (the protocol and `connect`/`disconnect` are PeerIo.java's).
//
//   count <tag> <path> <seed>           -> COUNT_STARTED <tag> <count> <version>; COUNT <tag> <count> <version> on every change
//   setcount <tag> <n>                  -> COUNT_SET <tag>
//   trysetcount <tag> <version> <n>     -> TRY_SET <tag> <true|false>   (a VersionedValue with that version and the current count)
//   increment <tag> <path> <n>          -> INCREMENTED <tag> <n> <failed>   (DistributedAtomicLong, RetryNTimes(1000, 1), own thread)
//   getlong <path>                      -> LONG <path> <value>
//   barrier <path> set|remove           -> BARRIER <path> set|remove
//   barrierwait <tag> <path>            -> BARRIER_PASSED <tag> <true|false>   (waitOnBarrier 30 s, own thread)
//   dbarrier <tag> <path> <qty>         -> ENTERED <tag> <true|false>, then after `leave <tag>` LEFT <tag> <true|false> (own thread)
//   leave <tag>
//   data <path>                         -> DATA <path> <hex>
//   quit

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;

public final class CuratorCountersPeer {
    private static final long WAIT_SECONDS = PeerIo.WAIT_SECONDS;

    private static final Map<String, SharedCount> counts = new ConcurrentHashMap<>();
    private static final Map<String, CountDownLatch> leaves = new ConcurrentHashMap<>();

    private CuratorCountersPeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorCountersPeer::handle, CuratorCountersPeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "count": {
                String tag = a[1];
                SharedCount count = new SharedCount(client, a[2], Integer.parseInt(a[3]));
                count.addListener(new SharedCountListener() {
                    @Override
                    public void countHasChanged(SharedCountReader reader, int newCount) {
                        PeerIo.out("COUNT " + tag + " " + newCount + " " + reader.getVersionedValue().getVersion());
                    }

                    @Override
                    public void stateChanged(CuratorFramework c, ConnectionState state) {}
                });
                count.start();
                counts.put(tag, count);
                VersionedValue<Integer> v = count.getVersionedValue();
                PeerIo.out("COUNT_STARTED " + tag + " " + v.getValue() + " " + v.getVersion());
                break;
            }
            case "setcount":
                counts.get(a[1]).setCount(Integer.parseInt(a[2]));
                PeerIo.out("COUNT_SET " + a[1]);
                break;
            case "trysetcount": {
                SharedCount count = counts.get(a[1]);
                // VersionedValue's constructor is package-private in 5.4.
                java.lang.reflect.Constructor<?> make = VersionedValue.class.getDeclaredConstructor(int.class, Object.class);
                make.setAccessible(true);
                @SuppressWarnings("unchecked")
                VersionedValue<Integer> previous =
                        (VersionedValue<Integer>) make.newInstance(Integer.parseInt(a[2]), count.getCount());
                PeerIo.out("TRY_SET " + a[1] + " " + count.trySetCount(previous, Integer.parseInt(a[3])));
                break;
            }
            case "increment": {
                String tag = a[1];
                String path = a[2];
                int n = Integer.parseInt(a[3]);
                PeerIo.background("increment-" + tag, () -> {
                    DistributedAtomicLong counter = new DistributedAtomicLong(client, path, new RetryNTimes(1000, 1));
                    int failed = 0;
                    for (int i = 0; i < n; i++) {
                        AtomicValue<Long> result = counter.increment();
                        if (!result.succeeded()) {
                            failed++;
                        }
                    }
                    PeerIo.out("INCREMENTED " + tag + " " + n + " " + failed);
                });
                break;
            }
            case "getlong": {
                DistributedAtomicLong counter = new DistributedAtomicLong(client, a[1], new RetryNTimes(0, 0));
                PeerIo.out("LONG " + a[1] + " " + counter.get().postValue());
                break;
            }
            case "barrier": {
                DistributedBarrier barrier = new DistributedBarrier(client, a[1]);
                if (a[2].equals("set")) {
                    barrier.setBarrier();
                } else {
                    barrier.removeBarrier();
                }
                PeerIo.out("BARRIER " + a[1] + " " + a[2]);
                break;
            }
            case "barrierwait": {
                String tag = a[1];
                DistributedBarrier barrier = new DistributedBarrier(client, a[2]);
                PeerIo.background("barrierwait-" + tag, () -> PeerIo.out(
                        "BARRIER_PASSED " + tag + " " + barrier.waitOnBarrier(WAIT_SECONDS, TimeUnit.SECONDS)));
                break;
            }
            case "dbarrier": {
                String tag = a[1];
                DistributedDoubleBarrier barrier = new DistributedDoubleBarrier(client, a[2], Integer.parseInt(a[3]));
                CountDownLatch leave = new CountDownLatch(1);
                leaves.put(tag, leave);
                PeerIo.background("dbarrier-" + tag, () -> {
                    PeerIo.out("ENTERED " + tag + " " + barrier.enter(WAIT_SECONDS, TimeUnit.SECONDS));
                    if (!leave.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("no leave " + tag);
                    }
                    PeerIo.out("LEFT " + tag + " " + barrier.leave(WAIT_SECONDS, TimeUnit.SECONDS));
                });
                break;
            }
            case "leave":
                leaves.remove(a[1]).countDown();
                break;
            case "data":
                PeerIo.out("DATA " + a[1] + " " + PeerIo.hex(client.getData().forPath(a[1])));
                break;
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    static void closeRecipes() {
        for (SharedCount c : counts.values()) {
            try {
                c.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
        counts.clear();
        for (CountDownLatch l : leaves.values()) {
            l.countDown();
        }
        leaves.clear();
    }
}
