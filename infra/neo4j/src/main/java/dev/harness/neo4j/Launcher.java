package dev.harness.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Runs one Neo4j Community DBMS for harness.
 *
 * <p>Configuration comes from the environment so credentials never appear in a process
 * listing: HARNESS_NEO4J_HOME (store directory), HARNESS_NEO4J_BOLT_PORT, and optionally
 * HARNESS_NEO4J_USER / HARNESS_NEO4J_PASSWORD (auth is disabled when the password is unset).
 * Prints one line starting with HARNESS_NEO4J_READY once Bolt accepts connections, then runs
 * until it is terminated.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) {
        String home = require("HARNESS_NEO4J_HOME");
        int port = Integer.parseInt(require("HARNESS_NEO4J_BOLT_PORT"));
        String user = System.getenv().getOrDefault("HARNESS_NEO4J_USER", "neo4j");
        String password = System.getenv("HARNESS_NEO4J_PASSWORD");
        boolean auth = password != null && !password.isEmpty();

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(Path.of(home))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(32))
                .setConfig(GraphDatabaseSettings.shutdown_transaction_end_timeout, Duration.ofSeconds(2))
                // Bolt's two event-loop groups otherwise wait a quiet period of 5 s each as
                // the DBMS stops, after its stores are already closed: 10 s of a stop that
                // is done in 0.1 s.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout, Duration.ofSeconds(2))
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown, "harness-neo4j-shutdown"));

        if (auth) {
            dbms.database("system").executeTransactionally(
                    "CREATE OR REPLACE USER `" + user.replace("`", "") + "` SET PASSWORD $pw CHANGE NOT REQUIRED",
                    Map.of("pw", password));
        }
        // Touch the default database so the first client query does not pay for its start.
        dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME).executeTransactionally("RETURN 1");
        System.out.println("HARNESS_NEO4J_READY bolt=127.0.0.1:" + port);
        System.out.flush();

        try {
            Thread.currentThread().join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String require(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            System.err.println("harness-neo4j-launcher: missing environment variable " + name);
            System.exit(2);
        }
        return value;
    }
}
