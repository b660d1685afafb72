// A Curator 5.4 process for cli/tests/curator.rs: it holds an InterProcessMutex, joins a
// LeaderLatch and registers a service instance with curator-x-discovery, then prints
// `READY <session id hex>` and keeps all three until its stdin closes.
//
// args: <connect-string> <lock-path> <latch-path> <latch-id> <base-path> <service> <instance-id> <port>

import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;

public final class CliPeer {
    private CliPeer() {}

    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[0], 20000, 10000, new RetryOneTime(100));
        client.start();
        require(client.blockUntilConnected(30, TimeUnit.SECONDS), "connect");

        InterProcessMutex mutex = new InterProcessMutex(client, args[1]);
        require(mutex.acquire(30, TimeUnit.SECONDS), "acquire the mutex");

        LeaderLatch latch = new LeaderLatch(client, args[2], args[3]);
        latch.start();
        require(latch.await(30, TimeUnit.SECONDS), "lead the latch");

        ServiceDiscovery<String> discovery =
            ServiceDiscoveryBuilder.builder(String.class).client(client).basePath(args[4]).build();
        discovery.start();
        ServiceInstance<String> instance = ServiceInstance.<String>builder()
            .name(args[5])
            .id(args[6])
            .address("10.1.2.3")
            .port(Integer.parseInt(args[7]))
            .payload("java")
            .build();
        discovery.registerService(instance);

        long session = client.getZookeeperClient().getZooKeeper().getSessionId();
        System.out.println("READY " + Long.toHexString(session));
        System.out.flush();
        while (System.in.read() != -1) {
            // Hold everything until the test closes our stdin.
        }
        discovery.close();
        latch.close();
        mutex.release();
        client.close();
    }

    private static void require(boolean ok, String what) {
        if (!ok) {
            throw new IllegalStateException("could not " + what + " within 30 s");
        }
    }
}
