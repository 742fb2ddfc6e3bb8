// JDBC's DatabaseMetaData, unmodified, connected to the database app of a
// node that also has tables in defaultdb: getCatalog and getCatalogs name
// app, getTables and getColumns see app's tables only.
// Usage: java -cp postgresql.jar JdbcDatabases.java URL. Prints "ok".
import java.sql.*;
import java.util.*;

public class JdbcDatabases {
    static void check(String what, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            throw new RuntimeException(what + ": got " + got + ", want " + want);
        }
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0])) {
            DatabaseMetaData md = c.getMetaData();
            check("getCatalog", c.getCatalog(), "app");
            List<String> dbs = new ArrayList<>();
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) dbs.add(rs.getString("TABLE_CAT"));
            }
            // pgjdbc 42.5 lists the connection's own database only.
            check("getCatalogs", dbs, List.of("app"));
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            check("getTables", tables, List.of("only_app", "shared_name"));
            List<String> cols = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "shared_name", "%")) {
                while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            check("getColumns", cols, List.of("id:int8", "in_app:text"));
        }
        System.out.println("ok");
    }
}
