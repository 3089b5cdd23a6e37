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
# The organizations are seed-01 ... seed-NN; user n is seed-NNNNNNN@example.com
# (username seedNNNNNNN) in organization n % SEED_ORGS, with one argon2id
# hash for all, so a benchmark can sign any of them in.  User ids are
# derived from the numbers (md5), which lets the audit rows name their actor
# and tenant without a join; audit ids are time-ordered (like UUIDv7).
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

# one transaction: fast, and no half chunk when interrupted
run_chunk() {
    psql_q -1 -v lo="$1" -v hi="$2" -v orgs="$SEED_ORGS" \
        -v users="$SEED_USERS" -v total="$SEED_AUDIT" -v days="$SEED_DAYS" \
        -v hash="$hash" \
        -c 'SET synchronous_commit = off' -f -
}

now() { date +%s%N; }
elapsed() {                             # seconds since a now()
    local ms=$(( ($(now) - $1) / 1000000 ))
    printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 ))
}

psql_q -At -c 'SELECT 1 FROM audit_logs LIMIT 0' >/dev/null \
    || die "no audit_logs table: migrate the database first (./build.sh migrate)"

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
INSERT INTO users (id, organization_id, email, username, password_hash,
                   first_name, last_name, department, user_type,
                   kyc_status, email_verified, last_login_at,
                   password_changed_at, created_at, updated_at)
SELECT md5('seed-user-' || n)::uuid,
       md5('seed-org-' || (n % :orgs))::uuid,
       'seed-' || lpad(n::text, 7, '0') || '@example.com',
       'seed' || lpad(n::text, 7, '0'),
       nullif(:'hash', ''),
       (ARRAY['James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer',
              'Michael', 'Linda', 'William', 'Elizabeth', 'David', 'Barbara',
              'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah',
              'Charles', 'Karen', 'Amir', 'Mei', 'Olga', 'Kwame', 'Lucía',
              'Søren', 'Anaïs', 'Hiroshi', 'Priya', 'Zoë'])[1 + n % 30],
       (ARRAY['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia',
              'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Hernandez',
              'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor',
              'Moore', 'Jackson', 'Martin', 'Lee', 'Perez', 'Thompson',
              'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis',
              'Robinson', 'Walker', 'Young', 'Allen', 'King', 'Wright',
              'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green',
              'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell',
              'Mitchell', 'Carter', 'Roberts'])[1 + (n / 30) % 50],
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
  FROM generate_series(:lo, :hi) n;
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
