# ruby-pg against kvnode: conn.transaction commits, rolls back on an
# exception, savepoints, and a serialization failure (PG::TRSerializationFailure).
#
# Usage: ruby ruby_pg_txn.rb URL. Prints "ok" and exits 0, or raises.
# The table `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty.
require 'pg'

url = ARGV[0]
a = PG.connect(url)
b = PG.connect(url)
def balance(c, id)
  c.exec_params('SELECT balance FROM accounts WHERE id = $1', [id]).getvalue(0, 0).to_i
end

a.transaction { |c| c.exec_params('INSERT INTO accounts VALUES ($1, $2), ($3, $4)', [1, 100, 2, 100]) }
begin
  a.transaction do |c|
    c.exec('UPDATE accounts SET balance = 0 WHERE id = 1')
    raise 'application error'
  end
rescue RuntimeError
end
raise 'rollback did not discard' unless balance(a, 1) == 100

a.transaction do |c|
  c.exec('SAVEPOINT s')
  c.exec('UPDATE accounts SET balance = 7 WHERE id = 2')
  c.exec('ROLLBACK TO SAVEPOINT s')
  c.exec('UPDATE accounts SET balance = balance + 1 WHERE id = 2')
end
raise 'savepoint' unless balance(b, 2) == 101

a.exec('BEGIN')
b.exec('BEGIN')
balance(a, 1)
balance(b, 1)
a.exec('UPDATE accounts SET balance = 1 WHERE id = 1')
b.exec('UPDATE accounts SET balance = 2 WHERE id = 1')
a.exec('COMMIT')
begin
  b.exec('COMMIT')
  raise 'both conflicting transactions committed'
rescue PG::TRSerializationFailure
end
raise 'the first commit won' unless balance(b, 1) == 1
puts 'ok'
