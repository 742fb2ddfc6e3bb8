// JDBC's DatabaseMetaData, unmodified: prints what each call read from the
// server's catalog, for TestCatalogMatchesPostgres to compare kvnode's
// answers with PostgreSQL's.
// Usage: java -cp postgresql.jar JdbcCatalogDump.java URL < CALLS
// Each line of CALLS is a call and its arguments (schema, then table):
//   getTables SCHEMA PATTERN | getColumns SCHEMA TABLE | getPrimaryKeys SCHEMA TABLE
//   getIndexInfo SCHEMA TABLE | getImportedKeys SCHEMA TABLE | getExportedKeys SCHEMA TABLE
// The output is the call, the result set's column names, then one line per
// row, the values separated by " | " (NULL for SQL NULL).
import java.io.*;
import java.sql.*;
import java.util.*;

public class JdbcCatalogDump {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0])) {
            DatabaseMetaData md = c.getMetaData();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            for (String line; (line = in.readLine()) != null; ) {
                String[] w = line.trim().split("\\s+");
                if (w[0].isEmpty()) continue;
                ResultSet rs;
                switch (w[0]) {
                    case "getTables": rs = md.getTables(null, w[1], w[2], new String[] {"TABLE"}); break;
                    case "getColumns": rs = md.getColumns(null, w[1], w[2], "%"); break;
                    case "getPrimaryKeys": rs = md.getPrimaryKeys(null, w[1], w[2]); break;
                    case "getIndexInfo": rs = md.getIndexInfo(null, w[1], w[2], false, false); break;
                    case "getImportedKeys": rs = md.getImportedKeys(null, w[1], w[2]); break;
                    case "getExportedKeys": rs = md.getExportedKeys(null, w[1], w[2]); break;
                    default: throw new IllegalArgumentException("unknown call " + w[0]);
                }
                System.out.println(line.trim());
                try (rs) {
                    ResultSetMetaData m = rs.getMetaData();
                    List<String> names = new ArrayList<>();
                    for (int i = 1; i <= m.getColumnCount(); i++) names.add(m.getColumnName(i));
                    System.out.println("  " + String.join(" | ", names));
                    while (rs.next()) {
                        List<String> vals = new ArrayList<>();
                        for (int i = 1; i <= m.getColumnCount(); i++) {
                            String v = rs.getString(i);
                            vals.add(v == null ? "NULL" : v);
                        }
                        System.out.println("  " + String.join(" | ", vals));
                    }
                }
            }
        }
    }
}
