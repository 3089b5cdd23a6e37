-- A faster um_ts().
--
-- to_char() made um_ts() the largest cost of every answer with times in
-- it (GET /users/{id}: half of its PostgreSQL time), and the earlier body
-- could not be inlined.  The JSON form of a timestamp is ISO 8601 whatever
-- DateStyle says; declared STABLE (which to_json is), PostgreSQL inlines
-- it into the queries that call it.  The text is unchanged:
-- 2026-01-02T01:04:05Z.

CREATE OR REPLACE FUNCTION um_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (to_json(date_trunc('second', t AT TIME ZONE 'UTC')) #>> '{}')
           || 'Z'
$$;
