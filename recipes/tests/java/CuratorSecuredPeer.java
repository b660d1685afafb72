// A Curator 5.4 peer for recipes/tests/curator_interop_secured.rs: Curator on a secured server
// (TLS on its secure port, SASL DIGEST-MD5 from a JAAS `Client` section), driven over stdin/stdout.
//
// ZooKeeper's client reads its security settings from system properties when Curator builds its
// ZooKeeper handle, so the test sets them with `prop` before `connect` (PeerIo.java's, as are
// `disconnect`, `release` and `quit`). Node operations answer with their outcome rather than an
// ERROR line, so that a refusal (NoAuth) is an answer the test can check.
//
//   prop <key> <value>                  -> PROP <key>   (System.setProperty)
//   connect <connect-string>            -> CONNECTED <session id hex>; STATE <state> on every change
//   acquire <tag> <path>                -> ACQUIRED <tag> <node name>, later RELEASED <tag> after `release <tag>`
//   create <path> <acl> <data>          -> RESULT create <path> OK | RESULT create <path> <KeeperException code>
//                                          (acl: `open`, or scheme:id:perms joined by `;`, perms as in zkCli: cdrwa)
//   get <path>                          -> RESULT get <path> OK <hex data> | RESULT get <path> <code>
//   set <path> <data>                   -> RESULT set <path> OK | RESULT set <path> <code>
//   delete <path>                       -> RESULT delete <path> OK | RESULT delete <path> <code>
//   acl <path>                          -> ACL <path> <scheme>:<id>:<perms>;...   (ZooKeeper's perms bit mask)
//   whoami                              -> WHOAMI <scheme>:<user>;...
//   nodes <path> <lock-name>            -> NODES <path> <name>:<protected>:<hex data> ...   (Curator's sorted order)
//   quit

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.LockInternals;
import org.apache.curator.framework.recipes.locks.StandardLockInternalsDriver;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;

public final class CuratorSecuredPeer {
    private CuratorSecuredPeer() {}

    /** InterProcessMutex, with the node it holds made visible. */
    static final class Mutex extends InterProcessMutex {
        Mutex(CuratorFramework client, String path) {
            super(client, path);
        }

        String heldNode() {
            return getLockPath();
        }
    }

    interface Op {
        String run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorSecuredPeer::handle, () -> {});
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "prop":
                System.setProperty(a[1], a[2]);
                PeerIo.out("PROP " + a[1]);
                break;
            case "acquire": {
                Mutex mutex = new Mutex(client, a[2]);
                PeerIo.hold("acquire", a[1], mutex, () -> PeerIo.name(mutex.heldNode()));
                break;
            }
            case "create":
                result("create", a[1], () -> {
                    client.create().withACL(acl(a[2])).forPath(a[1], a[3].getBytes(StandardCharsets.UTF_8));
                    return "";
                });
                break;
            case "get":
                result("get", a[1], () -> " " + PeerIo.hex(client.getData().forPath(a[1])));
                break;
            case "set":
                result("set", a[1], () -> {
                    client.setData().forPath(a[1], a[2].getBytes(StandardCharsets.UTF_8));
                    return "";
                });
                break;
            case "delete":
                result("delete", a[1], () -> {
                    client.delete().forPath(a[1]);
                    return "";
                });
                break;
            case "acl": {
                List<String> entries = new ArrayList<>();
                for (ACL entry : client.getACL().forPath(a[1])) {
                    entries.add(entry.getId().getScheme() + ":" + entry.getId().getId() + ":" + entry.getPerms());
                }
                PeerIo.out("ACL " + a[1] + " " + String.join(";", entries));
                break;
            }
            case "whoami": {
                List<String> ids = new ArrayList<>();
                for (ClientInfo info : client.getZookeeperClient().getZooKeeper().whoAmI()) {
                    ids.add(info.getAuthScheme() + ":" + info.getUser());
                }
                PeerIo.out("WHOAMI " + String.join(";", ids));
                break;
            }
            case "nodes": {
                String path = a[1];
                List<String> children =
                        LockInternals.getSortedChildren(client, path, a[2], new StandardLockInternalsDriver());
                PeerIo.out(PeerIo.nodesLine("NODES", client, path, children));
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    /** RESULT <op> <path> OK<what the op returns>, or RESULT <op> <path> <code> when ZooKeeper refuses. */
    static void result(String op, String path, Op work) throws Exception {
        try {
            PeerIo.out("RESULT " + op + " " + path + " OK" + work.run());
        } catch (KeeperException e) {
            PeerIo.out("RESULT " + op + " " + path + " " + e.code());
        }
    }

    /** `open`, or scheme:id:perms entries joined by `;` (the id may hold `:` and `,`, as an x509 DN). */
    static List<ACL> acl(String spec) {
        if (spec.equals("open")) {
            return ZooDefs.Ids.OPEN_ACL_UNSAFE;
        }
        List<ACL> out = new ArrayList<>();
        for (String entry : spec.split(";")) {
            int first = entry.indexOf(':');
            int last = entry.lastIndexOf(':');
            String scheme = entry.substring(0, first);
            String id = entry.substring(first + 1, last).replace('+', ' ');
            out.add(new ACL(perms(entry.substring(last + 1)), new Id(scheme, id)));
        }
        return out;
    }

    static int perms(String letters) {
        int perms = 0;
        for (char c : letters.toCharArray()) {
            switch (c) {
                case 'c': perms |= ZooDefs.Perms.CREATE; break;
                case 'd': perms |= ZooDefs.Perms.DELETE; break;
                case 'r': perms |= ZooDefs.Perms.READ; break;
                case 'w': perms |= ZooDefs.Perms.WRITE; break;
                case 'a': perms |= ZooDefs.Perms.ADMIN; break;
                default: throw new IllegalArgumentException("bad perms " + letters);
            }
        }
        return perms;
    }
}
