// A Curator 5.4 peer for core/tests/compression.rs: Curator's own GzipCompressionProvider, offline
// and through a CuratorFramework on the server named by the first argument (if any).
//
// One command per line on stdin, one answer per line on stdout; `-` stands for empty data.
//   compress <hex>           -> COMPRESSED <hex>        (GzipCompressionProvider.compress)
//   decompress <hex>         -> DECOMPRESSED <hex>, or REFUSED <exception class>
//   read <path>              -> READ <hex>              (getData().decompressed())
//   write <path> <hex>       -> WROTE <path>            (create().compressed())
//   set <path> <hex>         -> SET <path>              (setData().compressed())
// Anything else failing is `ERROR <command> <exception>`. Exits at the end of stdin.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.imps.GzipCompressionProvider;
import org.apache.curator.retry.RetryNTimes;

public final class CuratorCompressionPeer {
    private CuratorCompressionPeer() {}

    static String hex(byte[] data) {
        if (data.length == 0) {
            return "-";
        }
        StringBuilder s = new StringBuilder();
        for (byte b : data) {
            s.append(String.format("%02x", b & 0xff));
        }
        return s.toString();
    }

    static byte[] unhex(String s) {
        if (s.equals("-")) {
            return new byte[0];
        }
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        GzipCompressionProvider gzip = new GzipCompressionProvider();
        CuratorFramework client = null;
        if (args.length > 0) {
            client = CuratorFrameworkFactory.builder()
                    .connectString(args[0])
                    .retryPolicy(new RetryNTimes(20, 100))
                    .compressionProvider(gzip)
                    .build();
            client.start();
            if (!client.blockUntilConnected(30, java.util.concurrent.TimeUnit.SECONDS)) {
                System.out.println("ERROR connect timed out");
                return;
            }
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] a = line.trim().split(" ");
            try {
                switch (a[0]) {
                    case "compress":
                        System.out.println("COMPRESSED " + hex(gzip.compress("/", unhex(a[1]))));
                        break;
                    case "decompress":
                        try {
                            System.out.println("DECOMPRESSED " + hex(gzip.decompress("/", unhex(a[1]))));
                        } catch (java.io.IOException e) {
                            System.out.println("REFUSED " + e.getClass().getSimpleName());
                        }
                        break;
                    case "read":
                        System.out.println("READ " + hex(client.getData().decompressed().forPath(a[1])));
                        break;
                    case "write":
                        client.create().compressed().forPath(a[1], unhex(a[2]));
                        System.out.println("WROTE " + a[1]);
                        break;
                    case "set":
                        client.setData().compressed().forPath(a[1], unhex(a[2]));
                        System.out.println("SET " + a[1]);
                        break;
                    default:
                        System.out.println("ERROR unknown command " + a[0]);
                }
            } catch (Exception e) {
                System.out.println("ERROR " + line + " " + e);
            }
        }
        if (client != null) {
            client.close();
        }
    }
}
