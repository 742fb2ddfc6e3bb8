// JDBC's DatabaseMetaData, unmodified, against kvnode: getTables,
// getColumns, getPrimaryKeys and getIndexInfo, as database tools (DBeaver,
// DataGrip) and JPA schema validation call them. The expected values are
// PostgreSQL's for the same schema.
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
            // getPrimaryKeys and getIndexInfo read the fields of
            // information_schema._pg_expandarray's records.
            List<String> pks = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "two")) {
                while (rs.next()) {
                    pks.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("KEY_SEQ") + ":" + rs.getString("PK_NAME"));
                }
            }
            check("getPrimaryKeys", pks, List.of("b:1:two_pkey", "a:2:two_pkey"));
            List<String> idx = new ArrayList<>();
            for (String t : List.of("kv", "two")) {
                try (ResultSet rs = md.getIndexInfo(null, "public", t, false, false)) {
                    while (rs.next()) {
                        idx.add(rs.getString("TABLE_NAME") + ":" + rs.getString("INDEX_NAME") + ":" + rs.getBoolean("NON_UNIQUE") + ":"
                            + rs.getInt("ORDINAL_POSITION") + ":" + rs.getString("COLUMN_NAME") + ":" + rs.getString("ASC_OR_DESC")
                            + ":" + rs.getShort("TYPE"));
                    }
                }
            }
            check("getIndexInfo", idx, List.of("kv:kv_pkey:false:1:k:A:3", "two:two_pkey:false:1:b:A:3", "two:two_pkey:false:2:a:A:3"));
        }
        System.out.println("ok");
    }
}
