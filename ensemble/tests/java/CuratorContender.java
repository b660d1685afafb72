// A Curator contender for the ensemble fault tests: the same workload and the same line
// protocol as the Rust `contender` binary in `mutex` mode (see ensemble/src/bin/contender.rs),
// with Curator's InterProcessMutex on the same lock. With mode=compare, the Rust contender's
// `compare` mode: Curator's LeaderLatch at election=<path>, held, printing `leader` and
// `not-leader`; Curator's ServiceDiscovery registering instance <id> of service=<name> under
// /services, and after every CONNECTED or RECONNECTED reading it back: `instance-back`; and
// Curator's LeaderSelector at selector=<path> (auto-requeue, a LeaderSelectorListenerAdapter
// that gives up leadership on SUSPENDED or LOST), printing `selector-leader` at the start of
// each term and `selector-not-leader` at its end.
//
// Arguments: id=<writer> connect=<hosts/chroot> session_ms=<ms> writes=<n> gap_ms=<ms>
// [mode=mutex|compare election=<path> service=<name> selector=<path>].
// Commands on stdin: `stop` (the end of stdin too). Events on stdout, one per line:
//   state <STATE> <session id> 0 | acquired <token> <session id> | write ok <value> <token>
//   | write rejected <token> <why> | write unknown <token> <why> | violation <token> <what>
//   | released <token> | error <what> | stopped
//
// The fenced write: read the counter, then in one transaction check the lock node (Curator has
// no fencing check of its own: the lock node's path, from the protected getLockPath(), is it),
// set the counter at the version read, and append a log entry. The token is the lock node's czxid.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.data.Stat;

public final class CuratorContender {
    /** InterProcessMutex with its lock node's path in reach. */
    static final class FencedMutex extends InterProcessMutex {
        FencedMutex(CuratorFramework client, String path) {
            super(client, path);
        }

        String lockNode() {
            return getLockPath();
        }
    }

    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static long session(CuratorFramework client) {
        try {
            return client.getZookeeperClient().getZooKeeper().getSessionId();
        } catch (Exception e) {
            return 0;
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (String a : argv) {
            int eq = a.indexOf('=');
            if (eq > 0) {
                args.put(a.substring(0, eq), a.substring(eq + 1));
            }
        }
        String id = args.getOrDefault("id", "curator");
        int sessionMs = Integer.parseInt(args.getOrDefault("session_ms", "4000"));
        int writes = Integer.parseInt(args.getOrDefault("writes", "3"));
        long gapMs = Long.parseLong(args.getOrDefault("gap_ms", "0"));

        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.trim().equals("stop")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // the end of stdin is `stop`
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();

        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(args.get("connect"))
                .sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(sessionMs * 2)
                .retryPolicy(new ExponentialBackoffRetry(100, 3))
                .build();
        client.getConnectionStateListenable().addListener((c, state) -> out("state " + state + " " + session(c) + " 0"));
        client.start();

        if (args.getOrDefault("mode", "mutex").equals("compare")) {
            compare(client, id, args.getOrDefault("election", "/election"), args.getOrDefault("service", "compared"),
                    args.getOrDefault("selector", "/selector"), stop);
            client.close();
            out("stopped");
            return;
        }

        FencedMutex mutex = new FencedMutex(client, "/lock");
        while (!stop.get()) {
            boolean acquired;
            try {
                acquired = mutex.acquire(5, TimeUnit.SECONDS);
            } catch (Exception e) {
                out("error acquire " + e);
                // Backoff before the next attempt after an error (a retry loop, not a wait for nothing).
                Thread.sleep(100);
                continue;
            }
            if (!acquired) {
                continue;
            }
            String node = mutex.lockNode();
            long token = 0;
            try {
                Stat stat = client.checkExists().forPath(node);
                token = stat == null ? 0 : stat.getCzxid();
            } catch (Exception e) {
                out("error token " + e);
            }
            out("acquired " + token + " " + session(client));
            for (int n = 0; n < writes && token != 0; n++) {
                if (n > 0 && gapMs > 0) {
                    // Pacing: the writes of one hold spread over real time, so a stall can fall between them.
                    Thread.sleep(gapMs);
                }
                if (!write(client, node, id, token)) {
                    break;
                }
            }
            out("released " + token);
            try {
                mutex.release();
            } catch (Exception e) {
                out("error release " + e);
            }
        }
        client.close();
        out("stopped");
    }

    static boolean write(CuratorFramework client, String node, String id, long token) {
        String before;
        Stat stat = new Stat();
        try {
            before = new String(client.getData().storingStatIn(stat).forPath("/counter"), StandardCharsets.UTF_8);
        } catch (Exception e) {
            out("write unknown " + token + " reading the counter: " + e);
            return false;
        }
        long value = Long.parseLong(before.split(" ")[0]) + 1;
        String payload = value + " " + id + " " + token;
        byte[] bytes = payload.getBytes(StandardCharsets.UTF_8);
        try {
            List<CuratorOp> ops = List.of(
                    client.transactionOp().check().forPath(node),
                    client.transactionOp().setData().withVersion(stat.getVersion()).forPath("/counter", bytes),
                    client.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath("/log/w-", bytes));
            client.transaction().forOperations(ops);
            out("write ok " + value + " " + token);
            return true;
        } catch (KeeperException e) {
            int index = -1;
            int code = e.code().intValue();
            List<OpResult> results = e.getResults();
            if (results != null) {
                for (int i = 0; i < results.size(); i++) {
                    if (results.get(i) instanceof OpResult.ErrorResult
                            && ((OpResult.ErrorResult) results.get(i)).getErr() != 0) {
                        index = i;
                        code = ((OpResult.ErrorResult) results.get(i)).getErr();
                        break;
                    }
                }
            }
            if (index == 0) {
                out("write rejected " + token + " fencing check: " + KeeperException.Code.get(code));
            } else if (index == 1 && code == KeeperException.Code.BADVERSION.intValue()) {
                try {
                    String now = new String(client.getData().forPath("/counter"), StandardCharsets.UTF_8);
                    if (now.equals(payload)) {
                        out("write ok " + value + " " + token);
                        return true;
                    }
                    out("violation " + token + " the counter changed while " + id + " held token " + token
                            + ": read " + before + ", now " + now);
                } catch (Exception again) {
                    out("write unknown " + token + " re-reading the counter after BadVersion: " + again);
                }
            } else {
                out("write unknown " + token + " " + e);
            }
            return false;
        } catch (Exception e) {
            out("write unknown " + token + " " + e);
            return false;
        }
    }

    static void compare(CuratorFramework client, String id, String election, String service, String selectorPath,
            AtomicBoolean stop) throws Exception {
        ServiceDiscovery<Void> discovery = ServiceDiscoveryBuilder.builder(Void.class)
                .client(client)
                .basePath("/services")
                .build();
        ExecutorService checks = Executors.newSingleThreadExecutor();
        // Registered before the start, so that no reconnection after the registration goes unseen.
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.CONNECTED || state == ConnectionState.RECONNECTED) {
                checks.submit(() -> {
                    while (!stop.get()) {
                        try {
                            if (discovery.queryForInstance(service, id) != null) {
                                out("instance-back");
                                return;
                            }
                        } catch (Exception e) {
                            out("error query " + e);
                        }
                        try {
                            Thread.sleep(10);
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                });
            }
        });
        LeaderLatch latch = new LeaderLatch(client, election, id);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                out("leader");
            }

            @Override
            public void notLeader() {
                out("not-leader");
            }
        });
        LeaderSelector selector = new LeaderSelector(client, selectorPath, new LeaderSelectorListenerAdapter() {
            @Override
            public void takeLeadership(CuratorFramework c) throws Exception {
                out("selector-leader");
                try {
                    // Lead until interrupted: the adapter interrupts on SUSPENDED or LOST.
                    Thread.currentThread().join();
                } finally {
                    out("selector-not-leader");
                }
            }
        });
        selector.autoRequeue();
        latch.start();
        selector.start();
        discovery.start();
        discovery.registerService(ServiceInstance.<Void>builder().name(service).id(id).port(8080).build());
        out("registered");
        while (!stop.get()) {
            Thread.sleep(20);
        }
        checks.shutdownNow();
        selector.close();
        latch.close();
        discovery.close();
    }
}
