// The PostgreSQL JDBC driver with autocommit off against kvnode: commit,
// rollback, savepoints, a serialization failure, and a cursor fetched in
// pages inside a transaction (portals that outlive Sync).
//
// Usage: java -cp /usr/share/java/postgresql.jar JdbcTxn.java JDBC_URL
// Prints "ok" and exits 0, or throws. The table
// `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;

public class JdbcTxn {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static int balance(Connection c, int id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT balance FROM accounts WHERE id = ?")) {
            ps.setInt(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "account " + id + " exists");
                return rs.getInt(1);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection c = DriverManager.getConnection(url)) {
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO accounts VALUES (?, ?)")) {
                for (int i = 1; i <= 50; i++) {
                    ins.setInt(1, i);
                    ins.setInt(2, 100);
                    ins.executeUpdate();
                }
            }
            c.commit();

            try (Statement st = c.createStatement()) {
                st.executeUpdate("UPDATE accounts SET balance = 0 WHERE id = 1");
                check(balance(c, 1) == 0, "reads its own write");
                c.rollback();
                check(balance(c, 1) == 100, "rollback discards");
                c.commit();

                Savepoint sp = c.setSavepoint("before");
                st.executeUpdate("UPDATE accounts SET balance = 7 WHERE id = 2");
                c.rollback(sp);
                st.executeUpdate("UPDATE accounts SET balance = 8 WHERE id = 3");
                c.commit();
                check(balance(c, 2) == 100 && balance(c, 3) == 8, "savepoint rollback");
                c.commit();
            }

            // A cursor read in pages of 10 inside a transaction.
            try (Statement st = c.createStatement()) {
                st.setFetchSize(10);
                int n = 0;
                try (ResultSet rs = st.executeQuery("SELECT id FROM accounts ORDER BY id")) {
                    while (rs.next()) {
                        n++;
                    }
                }
                check(n == 50, "fetched " + n + " rows in pages");
            }
            c.commit();

            // Two transactions that conflict: the second commit fails 40001.
            try (Connection o = DriverManager.getConnection(url)) {
                o.setAutoCommit(false);
                balance(c, 4);
                balance(o, 4);
                try (Statement a = c.createStatement(); Statement b = o.createStatement()) {
                    a.executeUpdate("UPDATE accounts SET balance = 1 WHERE id = 4");
                    b.executeUpdate("UPDATE accounts SET balance = 2 WHERE id = 4");
                }
                c.commit();
                try {
                    o.commit();
                    throw new AssertionError("both conflicting transactions committed");
                } catch (SQLException e) {
                    check("40001".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
                }
            }
            check(balance(c, 4) == 1, "the first commit won");
            c.commit();
        }
        System.out.println("ok");
    }
}
