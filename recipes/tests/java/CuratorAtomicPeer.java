// A Curator 5.4 peer for recipes/tests/atomic_values.rs: DistributedAtomicInteger and
// DistributedAtomicValue, driven over stdin/stdout (the protocol and `connect`/`disconnect` are
// PeerIo.java's). Hex data `-` is empty; a null value is written `null`.
//
//   intadd <tag> <path> <n>              -> INT_ADDED <tag> <n> <failed>   (n increments, RetryNTimes(1000, 1), own thread)
//   getint <path>                        -> INT <path> <value>
//   setint <path> <v>                    -> INT_SET <path> <succeeded> <pre> <post>   (trySet)
//   casint <path> <expected> <new>       -> INT_CAS <path> <succeeded> <pre> <post>
//   getvalue <path>                      -> VALUE <path> <hex|null>
//   setvalue <path> <hex>                -> VALUE_SET <path> <succeeded> <pre hex|null> <post hex>   (trySet)
//   casvalue <path> <expected> <new>     -> VALUE_CAS <path> <succeeded> <pre hex|null> <post hex|null>
//   valuecount <tag> <path> <n>          -> VALUE_COUNTED <tag> <n> <cas tries>   (n increments of a decimal
//                                           counter in the bytes, each a get + compareAndSet loop, own thread)
//   quit

import java.nio.charset.StandardCharsets;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicInteger;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicValue;
import org.apache.curator.retry.RetryNTimes;

public final class CuratorAtomicPeer {
    private CuratorAtomicPeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorAtomicPeer::handle, () -> {});
    }

    static String hex(byte[] data) {
        if (data == null) {
            return "null";
        }
        return data.length == 0 ? "-" : PeerIo.hex(data);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "intadd": {
                String tag = a[1];
                String path = a[2];
                int n = Integer.parseInt(a[3]);
                PeerIo.background("intadd-" + tag, () -> {
                    DistributedAtomicInteger counter = new DistributedAtomicInteger(client, path, new RetryNTimes(1000, 1));
                    int failed = 0;
                    for (int i = 0; i < n; i++) {
                        if (!counter.increment().succeeded()) {
                            failed++;
                        }
                    }
                    PeerIo.out("INT_ADDED " + tag + " " + n + " " + failed);
                });
                break;
            }
            case "getint": {
                DistributedAtomicInteger counter = new DistributedAtomicInteger(client, a[1], new RetryNTimes(0, 0));
                PeerIo.out("INT " + a[1] + " " + counter.get().postValue());
                break;
            }
            case "setint": {
                DistributedAtomicInteger counter = new DistributedAtomicInteger(client, a[1], new RetryNTimes(10, 1));
                AtomicValue<Integer> r = counter.trySet(Integer.parseInt(a[2]));
                PeerIo.out("INT_SET " + a[1] + " " + r.succeeded() + " " + r.preValue() + " " + r.postValue());
                break;
            }
            case "casint": {
                DistributedAtomicInteger counter = new DistributedAtomicInteger(client, a[1], new RetryNTimes(0, 0));
                AtomicValue<Integer> r = counter.compareAndSet(Integer.parseInt(a[2]), Integer.parseInt(a[3]));
                PeerIo.out("INT_CAS " + a[1] + " " + r.succeeded() + " " + r.preValue() + " " + r.postValue());
                break;
            }
            case "getvalue": {
                DistributedAtomicValue value = new DistributedAtomicValue(client, a[1], new RetryNTimes(0, 0));
                PeerIo.out("VALUE " + a[1] + " " + hex(value.get().postValue()));
                break;
            }
            case "setvalue": {
                DistributedAtomicValue value = new DistributedAtomicValue(client, a[1], new RetryNTimes(10, 1));
                AtomicValue<byte[]> r = value.trySet(PeerIo.unhex(a[2]));
                PeerIo.out("VALUE_SET " + a[1] + " " + r.succeeded() + " " + hex(r.preValue()) + " " + hex(r.postValue()));
                break;
            }
            case "casvalue": {
                DistributedAtomicValue value = new DistributedAtomicValue(client, a[1], new RetryNTimes(0, 0));
                AtomicValue<byte[]> r = value.compareAndSet(PeerIo.unhex(a[2]), PeerIo.unhex(a[3]));
                PeerIo.out("VALUE_CAS " + a[1] + " " + r.succeeded() + " " + hex(r.preValue()) + " " + hex(r.postValue()));
                break;
            }
            case "valuecount": {
                String tag = a[1];
                String path = a[2];
                int n = Integer.parseInt(a[3]);
                PeerIo.background("valuecount-" + tag, () -> {
                    DistributedAtomicValue value = new DistributedAtomicValue(client, path, new RetryNTimes(0, 0));
                    int tries = 0;
                    for (int i = 0; i < n; i++) {
                        while (true) {
                            tries++;
                            byte[] current = value.get().postValue();
                            long count = Long.parseLong(new String(current, StandardCharsets.UTF_8));
                            byte[] next = Long.toString(count + 1).getBytes(StandardCharsets.UTF_8);
                            if (value.compareAndSet(current, next).succeeded()) {
                                break;
                            }
                        }
                    }
                    PeerIo.out("VALUE_COUNTED " + tag + " " + n + " " + tries);
                });
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }
}
