// JDBC's DatabaseMetaData, unmodified, against kvnode: getTables and
// getColumns, as database tools (DBeaver, DataGrip) and JPA schema
// validation call them. (getPrimaryKeys and getIndexInfo select fields of
// information_schema._pg_expandarray's composite result, which kvnode does
// not have yet.)
// Usage: java -cp postgresql.jar JdbcMetaData.java URL. Prints "ok".
import java.sql.*;
import java.util.*;

public class JdbcMetaData {
    static void check(String what, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            throw new RuntimeException(what + ": got " + got + ", want " + want);
        }
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0])) {
            DatabaseMetaData md = c.getMetaData();
            check("product", md.getDatabaseProductName(), "PostgreSQL");
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            check("getTables", tables, List.of("kv", "two"));
            List<String> cols = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "kv", "%")) {
                while (rs.next()) {
                    cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getString("IS_NULLABLE"));
                }
            }
            check("getColumns", cols, List.of("k:int8:NO", "v:text:YES", "f:float8:YES"));
        }
        System.out.println("ok");
    }
}
