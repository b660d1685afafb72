// A Curator 5.4 peer for recipes/tests/curator_interop_discovery.rs (curator-x-discovery and
// InterProcessReadWriteLock), driven over stdin/stdout.
//
// One command per line on stdin; every answer and event is one line on stdout (the protocol and
// the `connect` handshake are PeerIo.java's, compiled with this file). Long-running work runs on
// its own thread, so events interleave; each line starts with a keyword and
// (mostly) the tag it is about. Any failure is reported as `ERROR <command> <exception>`. JSON
// in answers is compact (no spaces outside strings). The peer exits on `quit` or when stdin
// closes.
//
//   connect <connect-string>        -> CONNECTED <session id hex>   (closes everything and the old client first);
//                                      STATE <Curator connection state> on every change
//   disconnect                      -> DISCONNECTED   (closes everything and the client)
//
// Service discovery (one ServiceDiscovery<Map> with the default JsonInstanceSerializer(Map.class)):
//   discovery <base-path>           -> DISCOVERY_STARTED <base-path>
//   register <name> <id> <address> <port|-> <ssl-port|-> <service-type> <uri-spec|-> <payload-json|->
//                                   -> REGISTERED <id>
//   update <same arguments as register> -> UPDATED <id>
//   unregister <id>                 -> UNREGISTERED <id>
//   names                           -> NAMES <json array>                    (queryForNames, sorted)
//   instances <name>                -> INSTANCES <name> <json array>         (queryForInstances, sorted by id)
//   decode <path>                   -> DECODED <path> <json>   (the node's bytes through JsonInstanceSerializer(Map.class),
//                                      plus "mode": "ephemeral" | "persistent")
//   cache <tag> <name>              -> CACHE_STARTED <tag> <json ids>; CACHE_CHANGED <tag> <json ids> on every change
//   provider <tag> <name> <round-robin|random|sticky>
//                                   -> PROVIDER_STARTED <tag>
//   provide <tag> <n>               -> PROVIDED <tag> <json {"all":[instance...],"picks":[id...]}>
//                                      (getAllInstances, sorted by id, then n x getInstance)
//   An instance in JSON: {"name","id","address","port","sslPort","payload","registrationTimeUTC","serviceType",
//                         "enabled","uri"}, uri being uriSpec.build(instance) (null without a uriSpec).
//
// Read-write lock (InterProcessReadWriteLock with lockData = <tag>):
//   rw <tag> <path> <read|write>    -> ACQUIRED <tag> <node name>, later RELEASED <tag> after `release <tag>`
//   release <tag>
//   rwnodes <path>                  -> RWNODES <path> <name>:<protected>:<hex data> ...   (readers and writers, in the
//                                      order of Curator's own read-write sorting driver)
//   rwcontend <tag> <path> <marker> <rounds> <hold-ms> <write-every>
//                                   -> RW_STARTED <tag>; per round HELD <tag> <R|W> <t0-us> <t1-us>;
//                                      VIOLATION <tag> <what> for each violation; RW_DONE <tag> <rounds> <violations>
//                                      (round i writes if i % write-every == write-every - 1, else reads; a writer
//                                      creates <marker> EPHEMERAL with data <tag> while holding (NodeExists is a
//                                      violation), checks its data and deletes it; a reader checks that <marker>
//                                      does not exist when it gets the lock and before it releases)
//   quit

import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.LockInternals;
import org.apache.curator.framework.recipes.locks.LockInternalsSorter;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceInstanceBuilder;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.curator.x.discovery.strategies.RandomStrategy;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;
import org.apache.curator.x.discovery.strategies.StickyStrategy;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

@SuppressWarnings({"rawtypes", "unchecked"})
public final class CuratorDiscoveryPeer {
    private static final long WAIT_SECONDS = PeerIo.WAIT_SECONDS;
    private static final ObjectMapper JSON = new ObjectMapper();

    private static volatile ServiceDiscovery<Map> discovery;
    private static final Map<String, ServiceInstance<Map>> registered = new ConcurrentHashMap<>();
    private static final Map<String, ServiceCache<Map>> caches = new ConcurrentHashMap<>();
    private static final Map<String, ServiceProvider<Map>> providers = new ConcurrentHashMap<>();

    private CuratorDiscoveryPeer() {}

    static String json(Object value) throws Exception {
        return JSON.writeValueAsString(value);
    }

    static Map<String, Object> describe(ServiceInstance<Map> i) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", i.getName());
        m.put("id", i.getId());
        m.put("address", i.getAddress());
        m.put("port", i.getPort());
        m.put("sslPort", i.getSslPort());
        m.put("payload", i.getPayload());
        m.put("registrationTimeUTC", i.getRegistrationTimeUTC());
        m.put("serviceType", i.getServiceType() == null ? null : i.getServiceType().name());
        m.put("enabled", i.isEnabled());
        m.put("uri", i.getUriSpec() == null ? null : i.getUriSpec().build(i));
        return m;
    }

    static List<Map<String, Object>> describeAll(Collection<ServiceInstance<Map>> instances) {
        List<ServiceInstance<Map>> sorted = new ArrayList<>(instances);
        sorted.sort(Comparator.comparing(ServiceInstance::getId));
        List<Map<String, Object>> out = new ArrayList<>();
        for (ServiceInstance<Map> i : sorted) {
            out.add(describe(i));
        }
        return out;
    }

    static List<String> ids(Collection<ServiceInstance<Map>> instances) {
        List<String> ids = new ArrayList<>();
        for (ServiceInstance<Map> i : instances) {
            ids.add(i.getId());
        }
        ids.sort(null);
        return ids;
    }

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorDiscoveryPeer::handle, CuratorDiscoveryPeer::closeRecipes);
    }

    /** Every command but connect, disconnect and quit (PeerIo's). */
    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "discovery": {
                ServiceDiscovery<Map> d = ServiceDiscoveryBuilder.builder(Map.class)
                        .client(client)
                        .basePath(a[1])
                        .serializer(new JsonInstanceSerializer<>(Map.class))
                        .build();
                d.start();
                discovery = d;
                PeerIo.out("DISCOVERY_STARTED " + a[1]);
                break;
            }
            case "register":
            case "update": {
                ServiceInstanceBuilder<Map> b = ServiceInstance.<Map>builder()
                        .name(a[1])
                        .id(a[2])
                        .address(a[3])
                        .serviceType(ServiceType.valueOf(a[6]));
                if (!a[4].equals("-")) {
                    b.port(Integer.parseInt(a[4]));
                }
                if (!a[5].equals("-")) {
                    b.sslPort(Integer.parseInt(a[5]));
                }
                if (!a[7].equals("-")) {
                    b.uriSpec(new UriSpec(a[7]));
                }
                String payload = String.join(" ", java.util.Arrays.copyOfRange(a, 8, a.length));
                if (!payload.equals("-")) {
                    b.payload(JSON.readValue(payload, LinkedHashMap.class));
                }
                ServiceInstance<Map> instance = b.build();
                if (a[0].equals("register")) {
                    discovery.registerService(instance);
                    PeerIo.out("REGISTERED " + instance.getId());
                } else {
                    discovery.updateService(instance);
                    PeerIo.out("UPDATED " + instance.getId());
                }
                registered.put(instance.getId(), instance);
                break;
            }
            case "unregister":
                discovery.unregisterService(registered.remove(a[1]));
                PeerIo.out("UNREGISTERED " + a[1]);
                break;
            case "names": {
                List<String> names = new ArrayList<>(discovery.queryForNames());
                names.sort(null);
                PeerIo.out("NAMES " + json(names));
                break;
            }
            case "instances":
                PeerIo.out("INSTANCES " + a[1] + " " + json(describeAll(discovery.queryForInstances(a[1]))));
                break;
            case "decode": {
                Stat stat = new Stat();
                byte[] data = client.getData().storingStatIn(stat).forPath(a[1]);
                ServiceInstance<Map> instance = new JsonInstanceSerializer<>(Map.class).deserialize(data);
                Map<String, Object> m = describe(instance);
                m.put("mode", stat.getEphemeralOwner() != 0 ? "ephemeral" : "persistent");
                PeerIo.out("DECODED " + a[1] + " " + json(m));
                break;
            }
            case "cache": {
                String tag = a[1];
                ServiceCache<Map> cache = discovery.serviceCacheBuilder().name(a[2]).build();
                cache.addListener(new ServiceCacheListener() {
                    @Override
                    public void cacheChanged() {
                        try {
                            PeerIo.out("CACHE_CHANGED " + tag + " " + json(ids(cache.getInstances())));
                        } catch (Exception e) {
                            PeerIo.out("ERROR cache-" + tag + " " + e);
                        }
                    }

                    @Override
                    public void stateChanged(CuratorFramework c, ConnectionState state) {}
                });
                cache.start();
                caches.put(tag, cache);
                PeerIo.out("CACHE_STARTED " + tag + " " + json(ids(cache.getInstances())));
                break;
            }
            case "provider": {
                String tag = a[1];
                org.apache.curator.x.discovery.ProviderStrategy<Map> strategy;
                switch (a[3]) {
                    case "round-robin":
                        strategy = new RoundRobinStrategy<>();
                        break;
                    case "sticky":
                        strategy = new StickyStrategy<>(new RandomStrategy<>());
                        break;
                    default:
                        strategy = new RandomStrategy<>();
                }
                ServiceProvider<Map> provider =
                        discovery.serviceProviderBuilder().serviceName(a[2]).providerStrategy(strategy).build();
                provider.start();
                providers.put(tag, provider);
                PeerIo.out("PROVIDER_STARTED " + tag);
                break;
            }
            case "provide": {
                String tag = a[1];
                ServiceProvider<Map> provider = providers.get(tag);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("all", describeAll(provider.getAllInstances()));
                List<String> picks = new ArrayList<>();
                for (int i = 0; i < Integer.parseInt(a[2]); i++) {
                    ServiceInstance<Map> pick = provider.getInstance();
                    picks.add(pick == null ? null : pick.getId());
                }
                m.put("picks", picks);
                PeerIo.out("PROVIDED " + tag + " " + json(m));
                break;
            }
            case "rw": {
                String tag = a[1];
                String path = a[2];
                boolean write = a[3].equals("write");
                InterProcessReadWriteLock lock =
                        new InterProcessReadWriteLock(client, path, tag.getBytes(StandardCharsets.UTF_8));
                InterProcessMutex mutex = write ? lock.writeLock() : lock.readLock();
                PeerIo.hold("rw", tag, mutex, () -> ownNode(client, path, tag));
                break;
            }
            case "rwnodes": {
                String path = a[1];
                // Curator's own order: the children sorted by the read lock's own driver, as its
                // acquire loop sorts them (getParticipantNodes would list only the __READ__ nodes).
                InterProcessMutex readLock = new InterProcessReadWriteLock(client, path).readLock();
                List<String> children = LockInternals.getSortedChildren(client, path, "__READ__", sorterOf(readLock));
                PeerIo.out(PeerIo.nodesLine("RWNODES", client, path, children));
                break;
            }
            case "rwcontend": {
                String tag = a[1];
                String path = a[2];
                String marker = a[3];
                int rounds = Integer.parseInt(a[4]);
                long holdMs = Long.parseLong(a[5]);
                int writeEvery = Integer.parseInt(a[6]);
                PeerIo.background("rwcontend-" + tag, () -> contend(client, tag, path, marker, rounds, holdMs, writeEvery));
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** The sorting driver inside a Curator lock (private: reached by reflection). */
    static LockInternalsSorter sorterOf(InterProcessMutex mutex) throws Exception {
        Field internals = InterProcessMutex.class.getDeclaredField("internals");
        internals.setAccessible(true);
        Field driver = LockInternals.class.getDeclaredField("driver");
        driver.setAccessible(true);
        return (LockInternalsSorter) driver.get(internals.get(mutex));
    }

    /** The name of the lock node under path whose data is tag (the lock's lockData). */
    static String ownNode(CuratorFramework c, String path, String tag) throws Exception {
        byte[] mine = tag.getBytes(StandardCharsets.UTF_8);
        for (String child : c.getChildren().forPath(path)) {
            try {
                if (java.util.Arrays.equals(c.getData().forPath(path + "/" + child), mine)) {
                    return child;
                }
            } catch (KeeperException.NoNodeException e) {
                // gone meanwhile
            }
        }
        throw new IllegalStateException("no lock node with data " + tag + " under " + path);
    }

    /** Read and write rounds on one InterProcessReadWriteLock, proving exclusion with a marker node. */
    static void contend(CuratorFramework c, String tag, String path, String marker, int rounds, long holdMs,
            int writeEvery) throws Exception {
        InterProcessReadWriteLock lock = new InterProcessReadWriteLock(c, path, tag.getBytes(StandardCharsets.UTF_8));
        byte[] mine = tag.getBytes(StandardCharsets.UTF_8);
        int violations = 0;
        PeerIo.out("RW_STARTED " + tag);
        for (int i = 0; i < rounds; i++) {
            boolean write = i % writeEvery == writeEvery - 1;
            InterProcessMutex mutex = write ? lock.writeLock() : lock.readLock();
            if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("rw " + tag + " timed out on round " + i);
            }
            long t0 = PeerIo.micros();
            try {
                if (write) {
                    boolean created = false;
                    try {
                        c.create().withMode(CreateMode.EPHEMERAL).forPath(marker, mine);
                        created = true;
                    } catch (KeeperException.NodeExistsException e) {
                        violations++;
                        PeerIo.out("VIOLATION " + tag + " writer-found-marker");
                    }
                    // A hold inside the lock: widens the window a conflicting holder would show in (the marker).
                    Thread.sleep(holdMs);
                    if (created) {
                        Stat stat = new Stat();
                        try {
                            byte[] data = c.getData().storingStatIn(stat).forPath(marker);
                            if (!java.util.Arrays.equals(data, mine)) {
                                violations++;
                                PeerIo.out("VIOLATION " + tag + " marker-replaced");
                            } else {
                                c.delete().withVersion(stat.getVersion()).forPath(marker);
                            }
                        } catch (KeeperException.NoNodeException e) {
                            violations++;
                            PeerIo.out("VIOLATION " + tag + " marker-deleted");
                        }
                    }
                } else {
                    if (c.checkExists().forPath(marker) != null) {
                        violations++;
                        PeerIo.out("VIOLATION " + tag + " reader-found-marker-on-entry");
                    }
                    // A hold inside the lock: widens the window a conflicting holder would show in (the marker).
                    Thread.sleep(holdMs);
                    if (c.checkExists().forPath(marker) != null) {
                        violations++;
                        PeerIo.out("VIOLATION " + tag + " reader-found-marker-on-exit");
                    }
                }
            } finally {
                PeerIo.out("HELD " + tag + " " + (write ? "W" : "R") + " " + t0 + " " + PeerIo.micros());
                mutex.release();
            }
        }
        PeerIo.out("RW_DONE " + tag + " " + rounds + " " + violations);
    }

    /** Closes every recipe (PeerIo closes the client next). */
    static void closeRecipes() {
        for (ServiceProvider<Map> p : providers.values()) {
            try {
                p.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
        providers.clear();
        for (ServiceCache<Map> cache : caches.values()) {
            try {
                cache.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
        caches.clear();
        ServiceDiscovery<Map> d = discovery;
        discovery = null;
        registered.clear();
        if (d != null) {
            try {
                d.close();
            } catch (Exception e) {
                // closing anyway
            }
        }
    }
}
