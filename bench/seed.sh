#!/usr/bin/env bash
#
# bench/seed.sh - fill a migrated usermgmt database with benchmark data:
# 1,000,000 users and 10,000,000 audit rows, generated inside PostgreSQL
# (INSERT ... SELECT over generate_series, in chunks of one transaction
# each), so it takes minutes, not hours.
#
# Usage: PGHOST=127.0.0.1 PGPORT=55432 PGUSER=usermgmt PGDATABASE=usermgmt \
#            bench/seed.sh
# Knobs: SEED_USERS (1000000), SEED_AUDIT (10000000), SEED_ORGS (10),
#        SEED_CHUNK (1000000 rows a transaction), SEED_DAYS (365: the audit
#        rows spread over that many days back), SEED_PASSWORD (the password
#        of every seeded user, bench-Passphrase-4711).
#
# The organizations are seed-00 ... seed-NN; user n is seed-NNNNNNN@example.com
# (username seedNNNNNNN) in organization n % SEED_ORGS, with one argon2id
# hash for all, so a benchmark can sign any of them in.  User ids are
# derived from the numbers (md5), which lets the audit rows name their actor
# and tenant without a join; audit ids are time-ordered (like UUIDv7).
# First and last names come from lists of 200 and 310 common names, picked
# by a hash of n with the common ones more often (see the users chunk), so
# full-text and substring search see a realistic spread: one name is in at
# most about 3% of a tenant, a first and last name together in a handful.
#
# The users and audit rows are written with session_replication_role =
# replica (no triggers fire for them), which the role must be allowed to
# set: a superuser, or GRANT SET ON PARAMETER session_replication_role
# TO the role (bench/users.sh does that).
#
# Rows go in fastest without the secondary indexes: those of users and
# audit_logs that back no constraint are dropped for the load and built
# again after it, from their definitions in pg_indexes, kept meanwhile in
# the table seed_saved_indexes (a run that was interrupted rebuilds them
# first).  Refuses to seed the same database twice.

set -euo pipefail

SEED_USERS=${SEED_USERS:-1000000}
SEED_AUDIT=${SEED_AUDIT:-10000000}
SEED_ORGS=${SEED_ORGS:-10}
SEED_CHUNK=${SEED_CHUNK:-1000000}
SEED_DAYS=${SEED_DAYS:-365}
SEED_PASSWORD=${SEED_PASSWORD:-bench-Passphrase-4711}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'seed.sh: %s\n' "$*" >&2; exit 1; }

for knob in SEED_USERS SEED_AUDIT SEED_ORGS SEED_CHUNK SEED_DAYS; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a whole number"
done
(( SEED_ORGS >= 1 && SEED_ORGS <= 99 )) || die "SEED_ORGS must be 1..99"
(( SEED_CHUNK >= 1 && SEED_DAYS >= 1 )) || die "SEED_CHUNK, SEED_DAYS >= 1"
(( SEED_USERS >= 1 || SEED_AUDIT == 0 )) || die "audit rows need users"

command -v psql >/dev/null || die "psql is missing (postgresql-client)"

psql_q() {
    psql -X -q -v ON_ERROR_STOP=1 "$@"
}

# One transaction: fast, and no half chunk when interrupted.  As a
# replica: triggers on users or audit_logs (a welcome mail for a new user,
# say) are not for generated rows, and the foreign keys hold by
# construction.  Nothing the benchmarks use comes from such a trigger: the
# organizations, whose trigger makes their built-in roles, are inserted
# outside.
run_chunk() {
    psql_q -1 -v lo="$1" -v hi="$2" -v orgs="$SEED_ORGS" \
        -v users="$SEED_USERS" -v total="$SEED_AUDIT" -v days="$SEED_DAYS" \
        -v hash="$hash" \
        -c 'SET synchronous_commit = off' \
        -c 'SET session_replication_role = replica' -f -
}

now() { date +%s%N; }
elapsed() {                             # seconds since a now()
    local ms=$(( ($(now) - $1) / 1000000 ))
    printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 ))
}

psql_q -At -c 'SELECT 1 FROM audit_logs LIMIT 0' >/dev/null \
    || die "no audit_logs table: migrate the database first (./build.sh migrate)"
psql_q -c 'SET session_replication_role = replica' >/dev/null 2>&1 \
    || die "the role may not set session_replication_role: a superuser" \
           "grants it (GRANT SET ON PARAMETER session_replication_role" \
           "TO $(psql_q -At -c 'SELECT current_user'))"

# builds the indexes kept in seed_saved_indexes, then forgets them
restore_indexes() {
    local name def t
    psql_q -At -c "SELECT to_regclass('seed_saved_indexes') IS NOT NULL" \
        | grep -qx t || return 0
    while IFS='|' read -r name def; do
        [[ -n $name ]] || continue
        t=$(now)
        psql_q -v def="$def" -v name="$name" \
            -c "SET maintenance_work_mem = '1GB'" -f - <<'SQL'
SELECT :'def' AS def \gset
:def;
DELETE FROM seed_saved_indexes WHERE name = :'name';
SQL
        say "index $name ($(elapsed "$t") s)"
    done < <(psql_q -At -F '|' -c 'SELECT name, def FROM seed_saved_indexes
                                    ORDER BY name')
    psql_q -c 'DROP TABLE seed_saved_indexes'
}

restore_indexes

if [[ $(psql_q -At -c "SELECT count(*) FROM organizations
                        WHERE slug LIKE 'seed-%'") != 0 ]]; then
    die "the database is seeded already (organizations seed-*)"
fi

# one argon2id hash (OWASP parameters, as build.sh bootstrap makes them)
hash=
if command -v argon2 >/dev/null && command -v openssl >/dev/null; then
    salt=$(openssl rand -base64 16 | tr -d '=\n' | tr '+/' '-_')
    hash=$(printf %s "$SEED_PASSWORD" \
           | argon2 "$salt" -id -t 2 -k 19456 -p 1 -l 32 -e)
else
    say "argon2 or openssl missing: the seeded users get no password"
fi

start=$(now)

say "dropping the secondary indexes of users and audit_logs for the load"
psql_q <<'SQL'
CREATE TABLE seed_saved_indexes (name text PRIMARY KEY, def text NOT NULL);
INSERT INTO seed_saved_indexes (name, def)
SELECT i.indexname, i.indexdef
  FROM pg_indexes i
 WHERE i.schemaname = current_schema()
   AND i.tablename IN ('users', 'audit_logs')
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = format('%I.%I', i.schemaname,
                                              i.indexname)::regclass);
DO $$
DECLARE
    n text;
BEGIN
    FOR n IN SELECT name FROM seed_saved_indexes LOOP
        EXECUTE format('DROP INDEX %I', n);
    END LOOP;
END
$$;
SQL

say "organizations: $SEED_ORGS"
psql_q -v orgs="$SEED_ORGS" <<'SQL'
INSERT INTO organizations (id, name, slug, allow_self_registration)
SELECT md5('seed-org-' || k)::uuid, 'Seed ' || lpad(k::text, 2, '0'),
       'seed-' || lpad(k::text, 2, '0'), false
  FROM generate_series(0, :orgs - 1) k;
SQL

t=$(now)
for ((lo = 1; lo <= SEED_USERS; lo += SEED_CHUNK)); do
    hi=$(( lo + SEED_CHUNK - 1 < SEED_USERS ? lo + SEED_CHUNK - 1 : SEED_USERS ))
    run_chunk "$lo" "$hi" <<'SQL'
-- The names: 200 first and 310 last names, each list from the most common
-- down.  A hash of n picks the place floor(N * u^1.5) of u, uniform in
-- [0, 1): the first of a list falls to about 1 user in 35 (first names)
-- and 1 in 45 (last names), the last to 1 in 300 and 1 in 470, so a word
-- finds between a few hundred and a few thousand users of a tenant.
WITH names AS (
    SELECT ARRAY[
        'James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer',
        'Michael', 'Linda', 'David', 'Elizabeth', 'William', 'Barbara',
        'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah',
        'Charles', 'Karen', 'Christopher', 'Lisa', 'Daniel', 'Nancy',
        'Matthew', 'Betty', 'Anthony', 'Sandra', 'Mark', 'Margaret',
        'Donald', 'Ashley', 'Steven', 'Kimberly', 'Andrew', 'Emily',
        'Paul', 'Donna', 'Joshua', 'Michelle', 'Kenneth', 'Carol',
        'Kevin', 'Amanda', 'Brian', 'Melissa', 'George', 'Deborah',
        'Timothy', 'Stephanie', 'Ronald', 'Rebecca', 'Jason', 'Laura',
        'Edward', 'Sharon', 'Jeffrey', 'Cynthia', 'Ryan', 'Kathleen',
        'Jacob', 'Amy', 'Gary', 'Angela', 'Nicholas', 'Shirley', 'Eric',
        'Anna', 'Jonathan', 'Brenda', 'Stephen', 'Pamela', 'Larry',
        'Emma', 'Justin', 'Nicole', 'Scott', 'Helen', 'Brandon',
        'Samantha', 'Benjamin', 'Katherine', 'Samuel', 'Christine',
        'Gregory', 'Debra', 'Alexander', 'Rachel', 'Frank', 'Carolyn',
        'Patrick', 'Janet', 'Raymond', 'Catherine', 'Jack', 'Maria',
        'Dennis', 'Heather', 'Jerry', 'Diane', 'Tyler', 'Ruth', 'Aaron',
        'Julie', 'Jose', 'Olivia', 'Adam', 'Joyce', 'Nathan', 'Virginia',
        'Henry', 'Victoria', 'Douglas', 'Kelly', 'Zachary', 'Lauren',
        'Peter', 'Christina', 'Kyle', 'Joan', 'Ethan', 'Evelyn',
        'Walter', 'Judith', 'Noah', 'Megan', 'Jeremy', 'Andrea',
        'Christian', 'Cheryl', 'Keith', 'Hannah', 'Roger', 'Jacqueline',
        'Terry', 'Martha', 'Gerald', 'Gloria', 'Harold', 'Teresa',
        'Sean', 'Ann', 'Austin', 'Sara', 'Carl', 'Madison', 'Arthur',
        'Frances', 'Lawrence', 'Kathryn', 'Dylan', 'Janice', 'Jesse',
        'Jean', 'Jordan', 'Abigail', 'Bryan', 'Alice', 'Billy', 'Judy',
        'Amir', 'Mei', 'Olga', 'Kwame', 'Lucía', 'Søren', 'Anaïs',
        'Hiroshi', 'Priya', 'Zoë', 'Ahmed', 'Fatima', 'Wei', 'Yuki',
        'Chen', 'Aisha', 'Mohammed', 'Ingrid', 'Pavel', 'Svetlana',
        'Rahul', 'Ananya', 'Kofi', 'Amara', 'Diego', 'Sofia', 'Mateo',
        'Valentina', 'Luca', 'Giulia', 'Hamid', 'Leila', 'Tariq',
        'Nadia', 'Jin', 'Hana', 'Sven', 'Astrid', 'Omar', 'Yasmin']
        AS first,
    ARRAY[
        'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia',
        'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Hernandez', 'Lopez',
        'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore',
        'Jackson', 'Martin', 'Lee', 'Perez', 'Thompson', 'White',
        'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
        'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres',
        'Nguyen', 'Hill', 'Flores', 'Green', 'Adams', 'Nelson', 'Baker',
        'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts',
        'Gomez', 'Phillips', 'Evans', 'Turner', 'Diaz', 'Parker', 'Cruz',
        'Edwards', 'Collins', 'Reyes', 'Stewart', 'Morris', 'Morales',
        'Murphy', 'Cook', 'Rogers', 'Gutierrez', 'Ortiz', 'Morgan',
        'Cooper', 'Peterson', 'Bailey', 'Reed', 'Kelly', 'Howard',
        'Ramos', 'Kim', 'Cox', 'Ward', 'Richardson', 'Watson', 'Brooks',
        'Chavez', 'Wood', 'Bennett', 'Gray', 'Mendoza', 'Ruiz', 'Hughes',
        'Price', 'Alvarez', 'Castillo', 'Sanders', 'Patel', 'Myers',
        'Long', 'Ross', 'Foster', 'Jimenez', 'Powell', 'Jenkins',
        'Perry', 'Russell', 'Sullivan', 'Bell', 'Coleman', 'Butler',
        'Henderson', 'Barnes', 'Gonzales', 'Fisher', 'Vasquez',
        'Simmons', 'Romero', 'Jordan', 'Patterson', 'Alexander',
        'Hamilton', 'Graham', 'Reynolds', 'Griffin', 'Wallace', 'Moreno',
        'West', 'Cole', 'Hayes', 'Bryant', 'Herrera', 'Gibson', 'Ellis',
        'Tran', 'Medina', 'Aguilar', 'Stevens', 'Murray', 'Ford',
        'Castro', 'Marshall', 'Owens', 'Harrison', 'Fernandez',
        'McDonald', 'Woods', 'Washington', 'Kennedy', 'Wells', 'Vargas',
        'Henry', 'Chen', 'Freeman', 'Webb', 'Tucker', 'Guzman', 'Burns',
        'Crawford', 'Olson', 'Simpson', 'Porter', 'Hunter', 'Gordon',
        'Mendez', 'Silva', 'Shaw', 'Snyder', 'Mason', 'Dixon', 'Munoz',
        'Hunt', 'Hicks', 'Holmes', 'Palmer', 'Wagner', 'Black',
        'Robertson', 'Boyd', 'Rose', 'Stone', 'Salazar', 'Fox', 'Warren',
        'Mills', 'Meyer', 'Rice', 'Schmidt', 'Garza', 'Daniels',
        'Ferguson', 'Nichols', 'Stephens', 'Soto', 'Weaver', 'Ryan',
        'Gardner', 'Payne', 'Grant', 'Dunn', 'Kelley', 'Spencer',
        'Hawkins', 'Arnold', 'Pierce', 'Vazquez', 'Hansen', 'Peters',
        'Santos', 'Hart', 'Bradley', 'Knight', 'Elliott', 'Cunningham',
        'Duncan', 'Armstrong', 'Hudson', 'Carroll', 'Lane', 'Riley',
        'Andrews', 'Alvarado', 'Ray', 'Delgado', 'Berry', 'Perkins',
        'Hoffman', 'Johnston', 'Matthews', 'Pena', 'Richards',
        'Contreras', 'Willis', 'Carpenter', 'Lawrence', 'Sandoval',
        'Guerrero', 'George', 'Chapman', 'Rios', 'Estrada', 'Ortega',
        'Watkins', 'Greene', 'Nunez', 'Wheeler', 'Valdez', 'Harper',
        'Burke', 'Larson', 'Santiago', 'Maldonado', 'Morrison',
        'Franklin', 'Carlson', 'Austin', 'Dominguez', 'Carr', 'Lawson',
        'Jacobs', 'Obrien', 'Lynch', 'Singh', 'Vega', 'Bishop',
        'Montgomery', 'Oliver', 'Jensen', 'Harvey', 'Williamson',
        'Gilbert', 'Dean', 'Sims', 'Espinoza', 'Howell', 'Li', 'Wong',
        'Reid', 'Hanson', 'Le', 'McCoy', 'Garrett', 'Burton', 'Fuller',
        'Wang', 'Weber', 'Welch', 'Rojas', 'Lucas', 'Marquez', 'Fields',
        'Park', 'Yang', 'Little', 'Banks', 'Padilla', 'Day', 'Walsh',
        'Bowman', 'Schultz', 'Luna', 'Fowler', 'Mejia', 'Davidson',
        'Nakamura', 'Kowalski', 'Okafor', 'Haddad', 'Novak', 'Lindqvist',
        'Rossi', 'Dubois', 'Müller', 'Ivanova'] AS last)
INSERT INTO users (id, organization_id, email, username, password_hash,
                   first_name, last_name, department, user_type,
                   kyc_status, email_verified, last_login_at,
                   password_changed_at, created_at, updated_at)
SELECT md5('seed-user-' || n)::uuid,
       md5('seed-org-' || (n % :orgs))::uuid,
       'seed-' || lpad(n::text, 7, '0') || '@example.com',
       'seed' || lpad(n::text, 7, '0'),
       nullif(:'hash', ''),
       names.first[1 + floor(cardinality(names.first)
                             * power(h.f, 1.5))::integer],
       names.last[1 + floor(cardinality(names.last)
                            * power(h.l, 1.5))::integer],
       (ARRAY['Engineering', 'Sales', 'Support', 'Finance', 'Operations',
              'Marketing', 'Legal', NULL])[1 + n % 8],
       CASE WHEN n % 100 = 0 THEN 'admin'
            WHEN n % 20 = 0 THEN 'manager' ELSE 'user' END,
       (ARRAY['pending', 'approved', 'rejected', NULL])[1 + n % 4],
       n % 3 <> 0,
       now() - (n % 90) * interval '1 day',
       now() - interval '200 days',
       now() - interval '400 days' + (n % 400) * interval '1 day',
       now() - (n % 30) * interval '1 day'
  FROM generate_series(:lo, :hi) n
 CROSS JOIN names
 CROSS JOIN LATERAL (
       SELECT (hashint8extended(n, 1) & 16777215) / 16777216.0::float8 AS f,
              (hashint8extended(n, 2) & 16777215) / 16777216.0::float8 AS l
       ) h;
SQL
    say "users $lo..$hi ($(elapsed "$t") s)"
done

t=$(now)
for ((lo = 1; lo <= SEED_AUDIT; lo += SEED_CHUNK)); do
    hi=$(( lo + SEED_CHUNK - 1 < SEED_AUDIT ? lo + SEED_CHUNK - 1 : SEED_AUDIT ))
    run_chunk "$lo" "$hi" <<'SQL'
-- row n: actor user n % users (its tenant follows), oldest first; the
-- action does not follow the tenant (n / 3), so every tenant has them all
INSERT INTO audit_logs (id, created_at, organization_id, actor_id, action,
                        resource, resource_id, status, ip, user_agent,
                        changes, metadata)
SELECT (lpad(to_hex(n), 12, '0') || substr(md5('seed-audit-' || n), 13))::uuid,
       now() - make_interval(days => :days)
           + (n::double precision / :total * :days)
             * interval '1 day',
       md5('seed-org-' || ((1 + n % :users) % :orgs))::uuid,
       md5('seed-user-' || (1 + n % :users))::uuid,
       a.action, a.resource,
       CASE a.resource
            WHEN 'user' THEN md5('seed-user-' || (1 + n % :users))::uuid
            ELSE md5('seed-session-' || n)::uuid END::text,
       CASE WHEN a.action = 'auth.login_failed' THEN 'failure'
            ELSE 'success' END,
       ('10.' || (n % 250) || '.' || (n / 250 % 250) || '.' || (n % 7))::inet,
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15',
              'curl/8.5.0', 'okhttp/4.12.0'])[1 + n % 4],
       CASE WHEN a.action = 'user.update'
            THEN jsonb_build_object('department',
                     jsonb_build_object('old', 'Sales', 'new', 'Support')) END,
       CASE WHEN a.action = 'auth.login_failed'
            THEN '{"reason": "wrong_password"}'::jsonb END
  FROM generate_series(:lo, :hi) n
 CROSS JOIN LATERAL (
       SELECT (ARRAY['auth.login', 'auth.login', 'auth.refresh',
                     'auth.refresh', 'auth.refresh', 'auth.logout',
                     'auth.login_failed', 'user.update'])[1 + (n / 3) % 8]
                  AS action) x
 CROSS JOIN LATERAL (
       SELECT x.action,
              CASE WHEN x.action = 'user.update' THEN 'user'
                   ELSE 'session' END AS resource) a;
SQL
    say "audit rows $lo..$hi ($(elapsed "$t") s)"
done

restore_indexes

t=$(now)
say "vacuum analyze"
psql_q -c 'VACUUM (ANALYZE) organizations, users, audit_logs'
say "vacuum analyze ($(elapsed "$t") s)"

say "seeded $SEED_USERS users and $SEED_AUDIT audit rows in $SEED_ORGS" \
    "organizations in $(elapsed "$start") s"
psql_q -At -c "SELECT 'users: ' || pg_size_pretty(pg_total_relation_size('users'))
                || ', audit_logs: '
                || pg_size_pretty(pg_total_relation_size('audit_logs'))" >&2
