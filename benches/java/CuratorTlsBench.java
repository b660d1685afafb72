import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.client.ZKClientConfig;

/**
 * Curator's side of corral-bench {@code tls} (issue 13): Curator 5.4.0 on the same ZooKeeper, plain
 * port and Netty secure port, in one JVM, in the format of ../shared/anchors/java/CuratorAnchors.java.
 * corral-bench compiles and runs it, and prefixes every metric with {@code curator_}.
 *
 * In each round, plain then TLS (alternating): warm connects (build + start + blockUntilConnected,
 * each closed after timing, as the anchors' startup_warm), sequential getData of one znode, and
 * pipelined getData (a Semaphore of `outstanding` permits and background callbacks, as the anchors'
 * throughput benchmark) over the znodes corral-bench made. Before the first round, one unmeasured
 * round warms the JIT on both transports.
 *
 * The TLS client gets its settings through its own ZKClientConfig (Curator's zkClientConfig()):
 * the Netty client socket, zookeeper.client.secure=true and the PEM trust store; the plain client
 * keeps ZooKeeper's defaults (NIO socket).
 *
 * Usage: java -cp ... -Dzk=HOST:PORT -DzkTls=HOST:PORT -Dtrust=ca.pem [-Drounds=3 -Dconnects=30
 * -DgetWarmup=3000 -Dgets=20000 -DgetSecs=10 -Doutstanding=1000 -DtpWarmupSecs=2 -DtpSecs=10
 * -Droot=/corral-tls-bench -Dnodes=100] CuratorTlsBench
 */
public class CuratorTlsBench {
    static final String PLAIN = System.getProperty("zk");
    static final String SECURE = System.getProperty("zkTls");
    static final String TRUST = System.getProperty("trust");
    static final int ROUNDS = Integer.getInteger("rounds", 3);
    static final int CONNECTS = Integer.getInteger("connects", 30);
    static final int GET_WARMUP = Integer.getInteger("getWarmup", 3000);
    static final int GETS = Integer.getInteger("gets", 20000);
    static final double GET_SECS = Double.parseDouble(System.getProperty("getSecs", "10"));
    static final int OUTSTANDING = Integer.getInteger("outstanding", 1000);
    static final double TP_WARMUP_SECS = Double.parseDouble(System.getProperty("tpWarmupSecs", "2"));
    static final double TP_SECS = Double.parseDouble(System.getProperty("tpSecs", "10"));
    static final String ROOT = System.getProperty("root", "/corral-tls-bench");
    static final int NODES = Integer.getInteger("nodes", 100);

    static final class Samples {
        final List<Long> connects = new ArrayList<>();
        final List<Long> gets = new ArrayList<>();
        final List<Double> rates = new ArrayList<>();
    }

    static void out(String metric, Object value, String unit) {
        System.out.println(metric + "=" + value + " " + unit);
        System.out.flush();
    }

    static CuratorFramework client(boolean tls) throws Exception {
        CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                .connectString(tls ? SECURE : PLAIN)
                .sessionTimeoutMs(30000)
                .connectionTimeoutMs(15000)
                .retryPolicy(new ExponentialBackoffRetry(100, 3));
        if (tls) {
            ZKClientConfig config = new ZKClientConfig();
            config.setProperty(ZKClientConfig.ZOOKEEPER_CLIENT_CNXN_SOCKET, "org.apache.zookeeper.ClientCnxnSocketNetty");
            config.setProperty(ZKClientConfig.SECURE_CLIENT, "true");
            config.setProperty("zookeeper.ssl.trustStore.location", TRUST);
            config.setProperty("zookeeper.ssl.trustStore.type", "PEM");
            b.zkClientConfig(config);
        }
        CuratorFramework c = b.build();
        c.start();
        if (!c.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("not connected to " + (tls ? SECURE : PLAIN));
        }
        return c;
    }

    static void round(boolean tls, Samples s, boolean measured) throws Exception {
        int connects = measured ? CONNECTS : Math.min(CONNECTS, 5);
        for (int i = 0; i < connects; i++) {
            long t0 = System.nanoTime();
            CuratorFramework c = client(tls);
            long t1 = System.nanoTime();
            c.close();
            if (measured) {
                s.connects.add(t1 - t0);
            }
        }
        CuratorFramework c = client(tls);
        try {
            String p = ROOT + "/n0";
            for (int i = 0; i < GET_WARMUP; i++) {
                c.getData().forPath(p);
            }
            long deadline = System.nanoTime() + (long) (GET_SECS * 1e9);
            for (int i = 0; measured && i < GETS && System.nanoTime() < deadline; i++) {
                long t0 = System.nanoTime();
                c.getData().forPath(p);
                s.gets.add(System.nanoTime() - t0);
            }
            pipelined(c, TP_WARMUP_SECS);
            double rate = pipelined(c, TP_SECS);
            if (measured) {
                s.rates.add(rate);
            }
        } finally {
            c.close();
        }
    }

    /** Completions per second of pipelined getData with OUTSTANDING in flight, drain included. */
    static double pipelined(CuratorFramework c, double seconds) throws Exception {
        Semaphore permits = new Semaphore(OUTSTANDING);
        AtomicLong done = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        int i = 0;
        while (System.nanoTime() < end) {
            permits.acquire();
            c.getData().inBackground((client, event) -> {
                if (event.getResultCode() != 0) {
                    errors.incrementAndGet();
                }
                done.incrementAndGet();
                permits.release();
            }).forPath(ROOT + "/n" + (i++ % NODES));
        }
        permits.acquire(OUTSTANDING);
        double elapsed = (System.nanoTime() - start) / 1e9;
        if (errors.get() > 0) {
            throw new IllegalStateException(errors.get() + " pipelined gets failed");
        }
        return done.get() / elapsed;
    }

    static void stats(String name, List<Long> nanos, double scale, String unit) {
        Collections.sort(nanos);
        int n = nanos.size();
        String fmt = unit.equals("ms") ? "%.2f" : "%.1f";
        out(name + "_p50", n == 0 ? "-1" : String.format(fmt, nanos.get((n - 1) / 2) / scale), unit);
        out(name + "_p99", n == 0 ? "-1" : String.format(fmt, nanos.get((int) Math.ceil(0.99 * n) - 1) / scale), unit);
        out(name + "_n", n, "samples");
    }

    static double median(List<Double> values) {
        Collections.sort(values);
        return values.isEmpty() ? 0 : values.get((values.size() - 1) / 2);
    }

    public static void main(String[] args) throws Exception {
        Samples plain = new Samples();
        Samples tls = new Samples();
        round(false, plain, false);
        round(true, tls, false);
        for (int r = 0; r < ROUNDS; r++) {
            boolean tlsFirst = r % 2 == 1;
            round(tlsFirst, tlsFirst ? tls : plain, true);
            round(!tlsFirst, tlsFirst ? plain : tls, true);
        }
        for (String name : new String[] {"plain", "tls"}) {
            Samples s = name.equals("plain") ? plain : tls;
            stats(name + "_connect", s.connects, 1e6, "ms");
            stats(name + "_get", s.gets, 1e3, "us");
            out(name + "_async_get_ops", String.format("%.0f", median(s.rates)), "ops/s");
        }
        System.out.println("# curator 5.4.0 (" + System.getProperty("java.vm.name") + " " + System.getProperty("java.version") + ")");
    }
}
