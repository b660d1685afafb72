import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.BackgroundCallback;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;

/**
 * Curator's side of corral-bench {@code cache} (issue 6): Curator 5.4.0's CuratorCache on the same
 * workload, in the format of ../shared/anchors/java/CuratorAnchors.java.
 *
 * A writer client creates N persistent children (default 10,000 x 128 B, pipelined) under
 * /anchors-curator/cache. A second client starts a CuratorCache on that root: cache_initial_load is
 * the time from start() to the listener's initialized(). Then the writer changes one node at a time
 * (200 unmeasured, then C measured, round-robin over the nodes); cache_event_latency is the time from
 * just before the writer's setData to the cache listener's changed() carrying the new data.
 *
 * Usage: java -cp ... CuratorCacheBench   (-Dzk=127.0.0.1:21810 -Dnodes=10000 -Dchanges=2000 -DdataSize=128)
 */
public class CuratorCacheBench {
    static final String CONNECT = System.getProperty("zk", "127.0.0.1:21810");
    static final String ROOT = "/anchors-curator/cache";
    static final int SESSION_MS = Integer.getInteger("sessionMs", 30000);

    static void out(String metric, Object value, String unit) {
        System.out.println(metric + "=" + value + " " + unit);
        System.out.flush();
    }

    static void note(String s) {
        System.out.println("# " + s);
        System.out.flush();
    }

    static CuratorFramework newClient() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(CONNECT)
                .sessionTimeoutMs(SESSION_MS)
                .connectionTimeoutMs(15000)
                .retryPolicy(new ExponentialBackoffRetry(1000, 3))
                .build();
        c.start();
        if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect to " + CONNECT);
        }
        return c;
    }

    static long pct(long[] sortedNs, int n, double p) {
        if (n == 0) return -1;
        int idx = (int) Math.ceil(p / 100.0 * n) - 1;
        if (idx < 0) idx = 0;
        if (idx >= n) idx = n - 1;
        return sortedNs[idx];
    }

    static void stats(String prefix, long[] ns, int n, String unit) {
        long[] s = Arrays.copyOf(ns, n);
        Arrays.sort(s);
        double div = unit.equals("us") ? 1e3 : 1e6;
        double sum = 0;
        for (long v : s) sum += v;
        String fmt = unit.equals("us") ? "%.1f" : "%.2f";
        out(prefix + "_p50", String.format(fmt, pct(s, n, 50) / div), unit);
        out(prefix + "_p99", String.format(fmt, pct(s, n, 99) / div), unit);
        out(prefix + "_mean", String.format(fmt, n == 0 ? -1 : sum / n / div), unit);
        out(prefix + "_max", String.format(fmt, n == 0 ? -1 : s[n - 1] / div), unit);
        out(prefix + "_n", n, "samples");
    }

    static long serverPackets() {
        String[] hp = CONNECT.split(",")[0].split(":");
        try (java.net.Socket s = new java.net.Socket(hp[0], Integer.parseInt(hp[1]))) {
            s.getOutputStream().write("mntr".getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            String txt = new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
            for (String line : txt.split("\n")) {
                String[] kv = line.split("\t");
                if (kv.length == 2 && kv[0].equals("zk_packets_received")) return Long.parseLong(kv[1].trim());
            }
        } catch (Exception e) {
            note("mntr failed: " + e);
        }
        return -1;
    }

    static void perOp(String metric, long before, long after, long ops) {
        if (before < 0 || after < 0 || ops <= 0) return;
        out(metric, String.format("%.2f", (after - before - 1) / (double) ops), "requests/op");
    }

    /** Deletes ROOT's children (pipelined, 1,000 in flight) and ROOT itself; a missing ROOT is fine. */
    static void deleteRoot(CuratorFramework c) throws Exception {
        List<String> children;
        try {
            children = c.getChildren().forPath(ROOT);
        } catch (KeeperException.NoNodeException e) {
            return;
        }
        Semaphore sem = new Semaphore(1000);
        BackgroundCallback cb = (cli, ev) -> sem.release();
        for (String child : children) {
            sem.acquire();
            c.delete().inBackground(cb).forPath(ROOT + "/" + child);
        }
        sem.acquire(1000);
        c.delete().forPath(ROOT);
    }

    public static void main(String[] args) throws Exception {
        final int nodes = Integer.getInteger("nodes", 10000);
        final int changes = Integer.getInteger("changes", 2000);
        final int warm = 200;
        final byte[] data = new byte[Integer.getInteger("dataSize", 128)];
        long began = System.nanoTime();
        note("bench cache (curator 5.4.0 CuratorCache, zk " + CONNECT + ")");
        CuratorFramework writer = newClient();
        CuratorFramework reader = newClient();
        deleteRoot(writer);
        writer.create().creatingParentsIfNeeded().forPath(ROOT);
        String[] paths = new String[nodes];
        Semaphore sem = new Semaphore(1000);
        AtomicLong failed = new AtomicLong();
        BackgroundCallback created = (cli, ev) -> {
            if (ev.getResultCode() != 0) failed.incrementAndGet();
            sem.release();
        };
        for (int i = 0; i < nodes; i++) {
            paths[i] = ROOT + "/n" + i;
            sem.acquire();
            writer.create().inBackground(created).forPath(paths[i], data);
        }
        sem.acquire(1000);
        if (failed.get() > 0) throw new IllegalStateException(failed.get() + " creates failed");

        CountDownLatch initialized = new CountDownLatch(1);
        BlockingQueue<Object[]> events = new LinkedBlockingQueue<>();
        CuratorCache cache = CuratorCache.build(reader, ROOT);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forInitialized(initialized::countDown)
                .forChanges((oldNode, node) -> events.add(new Object[]{node.getPath(), node.getData(), System.nanoTime()}))
                .build());
        long pk0 = serverPackets();
        long t0 = System.nanoTime();
        cache.start();
        if (!initialized.await(120, TimeUnit.SECONDS)) throw new IllegalStateException("cache not initialized in 120 s");
        long t1 = System.nanoTime();
        long pk1 = serverPackets();
        out("cache_initial_load", String.format("%.1f", (t1 - t0) / 1e6), "ms");
        out("cache_initial_load_count", cache.size() - 1, "nodes");
        perOp("cache_initial_load_requests_per_node", pk0, pk1, nodes);

        long[] lat = new long[changes];
        int n = 0;
        int missed = 0;
        for (int i = 0; i < warm + changes; i++) {
            String p = paths[i % nodes];
            byte[] v = ("change-" + i).getBytes(StandardCharsets.UTF_8);
            long s = System.nanoTime();
            writer.setData().forPath(p, v);
            long seenAt = 0;
            long until = s + TimeUnit.SECONDS.toNanos(5);
            while (seenAt == 0) {
                long left = until - System.nanoTime();
                Object[] e = left > 0 ? events.poll(left, TimeUnit.NANOSECONDS) : null;
                if (e == null) break;
                if (p.equals(e[0]) && Arrays.equals(v, (byte[]) e[1])) seenAt = (Long) e[2];
            }
            if (seenAt == 0) missed++;
            else if (i >= warm) lat[n++] = seenAt - s;
        }
        stats("cache_event_latency", lat, n, "us");
        out("cache_event_missed", missed, "count");

        cache.close();
        deleteRoot(writer);
        reader.close();
        writer.close();
        note("bench cache took " + String.format("%.1f", (System.nanoTime() - began) / 1e9) + " s");
        System.exit(0);
    }
}
