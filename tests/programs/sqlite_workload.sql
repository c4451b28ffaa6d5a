-- A deterministic SQLite workload: 100,000 rows inserted in one transaction,
-- an index, aggregates, a join, updates and deletes, an integrity check.
-- tests/programs.rs feeds it to `sqlite3 <fresh database file>` with and
-- without LD_PRELOAD=libslitter.so and requires identical output. No
-- random(): every value is arithmetic on the row number.
.bail on
.headers off
.mode list
PRAGMA cache_size = -16000;
PRAGMA journal_mode = DELETE;

CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    age INTEGER NOT NULL,
    score REAL NOT NULL,
    note TEXT NOT NULL
);

BEGIN;
WITH RECURSIVE seq(n) AS (
    SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 100000
)
INSERT INTO people (id, name, city, age, score, note)
SELECT n,
       'name-' || (n * 7919 % 100003),
       'city-' || (n * 31 % 97),
       18 + (n * 13 % 70),
       (n * 2654435761 % 1000003) / 1000.0,
       replace(hex(zeroblob(n % 120)), '0', char(97 + n % 26))
FROM seq;
COMMIT;

CREATE INDEX people_city ON people (city);
CREATE INDEX people_age_score ON people (age, score);

SELECT count(*), sum(age), round(avg(score), 4), min(name), max(name), sum(length(note)) FROM people;
SELECT city, count(*), round(avg(age), 3), round(sum(score), 3)
  FROM people GROUP BY city ORDER BY count(*) DESC, city LIMIT 10;
SELECT age, count(DISTINCT city), max(score) FROM people GROUP BY age ORDER BY age LIMIT 12;
SELECT id, name, score FROM people ORDER BY score DESC, id LIMIT 5;
SELECT length(group_concat(name, ',')), count(*) FROM people WHERE age < 30;
SELECT substr(note, 1, 1) AS letter, count(*), sum(length(note))
  FROM people GROUP BY letter ORDER BY letter;

CREATE TABLE cities AS SELECT city, count(*) AS n, avg(score) AS mean FROM people GROUP BY city;
SELECT count(*), sum(p.age), round(sum(c.mean), 3)
  FROM people AS p JOIN cities AS c USING (city) WHERE c.n > 1030;

BEGIN;
UPDATE people SET note = upper(note) || 'y' WHERE id % 3 = 0;
DELETE FROM people WHERE id % 5 = 0;
INSERT INTO people (name, city, age, score, note)
  SELECT name || '-copy', city, age + 1, score / 2, note FROM people WHERE id % 7 = 0;
COMMIT;

SELECT count(*), sum(length(note)), max(id) FROM people;
SELECT city, group_concat(age, '+') FROM (
  SELECT city, age FROM people WHERE id BETWEEN 1000 AND 1100 ORDER BY city, age
) GROUP BY city ORDER BY city LIMIT 5;
SELECT count(*) FROM people AS a JOIN people AS b ON a.id = b.id + 1 WHERE a.city = b.city;
PRAGMA integrity_check;
VACUUM;
SELECT 'sqlite_workload: ok';
