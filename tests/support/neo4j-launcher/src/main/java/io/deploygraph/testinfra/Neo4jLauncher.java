package io.deploygraph.testinfra;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.internal.Version;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Test-only launcher: runs the real Neo4j Community engine with its Bolt server on loopback,
 * no authentication, no TLS. Started (and stopped by pid, SIGTERM) by scripts/services.
 *
 * <pre>
 *   java -Xmx768m -cp 'classes:lib/*' io.deploygraph.testinfra.Neo4jLauncher --home DIR --port N
 * </pre>
 *
 * Options (each also readable from the environment):
 * <ul>
 *   <li>--home DIR (NEO4J_TEST_HOME): Neo4j home; data, transaction logs and debug.log go below it.</li>
 *   <li>--port N (NEO4J_TEST_PORT, default 7687): Bolt port on 127.0.0.1.</li>
 *   <li>--tx-timeout-seconds N (NEO4J_TEST_TX_TIMEOUT_SECONDS, default 120; 0 = none).</li>
 * </ul>
 * Prints {@code neo4j ready on 127.0.0.1:PORT} on stdout once the default database is available
 * and the Bolt connector is listening, then blocks until the JVM is told to exit.
 */
public final class Neo4jLauncher {
    private static final String HOST = "127.0.0.1";

    private Neo4jLauncher() {}

    public static void main(String[] args) throws Exception {
        String home = System.getenv("NEO4J_TEST_HOME");
        String port = envOr("NEO4J_TEST_PORT", "7687");
        String txTimeout = envOr("NEO4J_TEST_TX_TIMEOUT_SECONDS", "120");
        // Small by default for the test suite; benchmarks raise it.
        long pagecacheMb = Long.parseLong(envOr("NEO4J_TEST_PAGECACHE_MB", "64"));

        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--home":
                    home = value(args, ++i, a);
                    break;
                case "--port":
                    port = value(args, ++i, a);
                    break;
                case "--tx-timeout-seconds":
                    txTimeout = value(args, ++i, a);
                    break;
                case "-h":
                case "--help":
                    System.out.println("usage: Neo4jLauncher --home DIR [--port N] [--tx-timeout-seconds N]");
                    return;
                default:
                    die("unknown argument: " + a);
            }
        }
        if (home == null || home.isBlank()) {
            die("--home DIR is required (or NEO4J_TEST_HOME)");
        }
        int boltPort = parseInt(port, "--port");
        if (boltPort < 1 || boltPort > 65535) {
            die("--port out of range: " + boltPort);
        }
        int txSeconds = parseInt(txTimeout, "--tx-timeout-seconds");

        Path homeDir = Paths.get(home).toAbsolutePath();
        Files.createDirectories(homeDir);

        PrintStream out = System.out;
        out.println("neo4j-launcher: starting Neo4j " + Version.getNeo4jVersion()
                + " home=" + homeDir + " bolt=" + HOST + ":" + boltPort);
        out.flush();

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(homeDir)
                .setUserLogProvider(new Log4jLogProvider(out, Level.INFO))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, boltPort))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb))
                .setConfig(GraphDatabaseSettings.transaction_timeout, Duration.ofSeconds(txSeconds))
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Small, fast test store: no preallocation, no page-cache warmup.
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.pagecache_warmup_enabled, false)
                // Bolt waits 5 s + 5 s for idle connections/threads on shutdown by default; a test
                // server (stopped and started again to simulate outages) should stop promptly.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofMillis(500))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofMillis(500));

        final DatabaseManagementService dbms = builder.build();
        final CountDownLatch stopped = new CountDownLatch(1);

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("neo4j-launcher: shutting down");
            System.out.flush();
            try {
                dbms.shutdown();
            } catch (Throwable t) {
                t.printStackTrace();
            } finally {
                System.out.println("neo4j-launcher: stopped");
                System.out.flush();
                stopped.countDown();
            }
        }, "neo4j-launcher-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        if (!db.isAvailable(Duration.ofSeconds(120).toMillis())) {
            System.err.println("neo4j-launcher: default database did not become available");
            System.exit(1);
        }
        // Warm up Cypher so the first test query does not pay for it.
        db.executeTransactionally("RETURN 1");

        out.println("neo4j ready on " + HOST + ":" + boltPort);
        out.flush();

        // Block until the JVM exits (SIGTERM/SIGINT run the shutdown hook above).
        stopped.await();
    }

    private static String envOr(String name, String dflt) {
        String v = System.getenv(name);
        return (v == null || v.isBlank()) ? dflt : v;
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            die(flag + " needs a value");
        }
        return args[i];
    }

    private static int parseInt(String s, String what) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            die(what + ": not a number: " + s);
            return -1; // unreachable
        }
    }

    private static void die(String msg) {
        System.err.println("neo4j-launcher: " + msg);
        System.exit(2);
    }
}
