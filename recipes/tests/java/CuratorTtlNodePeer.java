// A Curator 5.4 peer for recipes/tests/persistent_ttl_node.rs, driven over stdin/stdout (the
// protocol and the `connect` handshake are PeerIo.java's, compiled with this file): Curator's
// PersistentTtlNode, and what Curator reads of one.
//
//   ttl-node <tag> <path> <ttl-ms> <hex data> -> TTL_NODE_STARTED <tag>   (after waitForInitialCreate)
//   close <tag>                               -> CLOSED <tag>
//   shape <path>                              -> SHAPE <path> <hex data> <children, comma-separated> <hex data of touch>
//   quit

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.nodes.PersistentTtlNode;

public final class CuratorTtlNodePeer {
    private static final Map<String, PersistentTtlNode> nodes = new ConcurrentHashMap<>();

    private CuratorTtlNodePeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorTtlNodePeer::handle, CuratorTtlNodePeer::closeRecipes);
    }

    static void handle(String[] a) throws Exception {
        CuratorFramework client = PeerIo.client;
        switch (a[0]) {
            case "ttl-node": {
                String tag = a[1];
                PersistentTtlNode node = new PersistentTtlNode(client, a[2], Long.parseLong(a[3]), unhex(a[4]));
                nodes.put(tag, node);
                node.start();
                if (!node.waitForInitialCreate(PeerIo.WAIT_SECONDS, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("ttl-node " + tag + " not created");
                }
                PeerIo.out("TTL_NODE_STARTED " + tag);
                break;
            }
            case "close":
                nodes.remove(a[1]).close();
                PeerIo.out("CLOSED " + a[1]);
                break;
            case "shape": {
                String path = a[1];
                byte[] data = client.getData().forPath(path);
                String children = String.join(",", client.getChildren().forPath(path));
                byte[] touch = client.getData().forPath(path + "/" + PersistentTtlNode.DEFAULT_CHILD_NODE_NAME);
                PeerIo.out("SHAPE " + path + " " + PeerIo.hex(data) + " " + children + " " + PeerIo.hex(touch));
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    static byte[] unhex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    /** Closes every node (PeerIo closes the client next). */
    static void closeRecipes() {
        for (PersistentTtlNode node : nodes.values()) {
            node.close();
        }
        nodes.clear();
    }
}
