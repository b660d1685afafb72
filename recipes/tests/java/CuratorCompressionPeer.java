// A Curator 5.4 peer for recipes/tests/curator_interop_compression.rs: Curator's own
// GzipCompressionProvider, offline and through the client's compressed creates and reads, driven
// over stdin/stdout (the protocol and `connect`/`disconnect` are PeerIo.java's). Hex `-` is empty.
//
//   compress <hex>           -> COMPRESSED <hex>                  (GzipCompressionProvider.compress)
//   decompress <hex>         -> DECOMPRESSED <hex>, or DECOMPRESSED REFUSED <exception class>
//   read <path>              -> READ <path> <hex>                  (getData().decompressed())
//   write <path> <hex>       -> WROTE <path>                       (create().compressed())
//   set <path> <hex>         -> SET <path>                         (setData().compressed())
//   quit

import java.io.IOException;

import org.apache.curator.framework.imps.GzipCompressionProvider;

public final class CuratorCompressionPeer {
    private static final GzipCompressionProvider GZIP = new GzipCompressionProvider();

    private CuratorCompressionPeer() {}

    public static void main(String[] args) throws Exception {
        PeerIo.serve(CuratorCompressionPeer::handle, () -> {});
    }

    static String hex(byte[] data) {
        return data.length == 0 ? "-" : PeerIo.hex(data);
    }

    static void handle(String[] a) throws Exception {
        switch (a[0]) {
            case "compress":
                PeerIo.out("COMPRESSED " + hex(GZIP.compress("/", PeerIo.unhex(a[1]))));
                break;
            case "decompress":
                try {
                    PeerIo.out("DECOMPRESSED " + hex(GZIP.decompress("/", PeerIo.unhex(a[1]))));
                } catch (IOException e) {
                    PeerIo.out("DECOMPRESSED REFUSED " + e.getClass().getSimpleName());
                }
                break;
            case "read":
                PeerIo.out("READ " + a[1] + " " + hex(PeerIo.client.getData().decompressed().forPath(a[1])));
                break;
            case "write":
                PeerIo.client.create().compressed().forPath(a[1], PeerIo.unhex(a[2]));
                PeerIo.out("WROTE " + a[1]);
                break;
            case "set":
                PeerIo.client.setData().compressed().forPath(a[1], PeerIo.unhex(a[2]));
                PeerIo.out("SET " + a[1]);
                break;
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }
}
