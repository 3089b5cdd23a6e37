-- Reading the audit trail: GET /audit/logs, /audit/user/{id}/activity,
-- /audit/organization/{id}/stats and the streamed /audit/export.
--
-- Rows are written by um_audit() (0002_auth.sql) inside the function of
-- each mutation; nothing here writes.
--
-- Lists and exports walk the trail by (created_at, id): "newest first" for
-- the pages, "oldest first" in batches for the export.  A position in that
-- order is a keyset: the next page or batch starts after it, so deep pages
-- cost no more than the first one.

-- The keyset order of one tenant, and of every tenant for a super admin.
-- They replace the indexes on (organization_id, created_at DESC) and
-- (created_at) of 0002_auth.sql, which cannot order by id as well; a btree
-- is read backwards just as well for "newest first".
CREATE INDEX audit_logs_org_created_id_idx
    ON audit_logs (organization_id, created_at, id);
CREATE INDEX audit_logs_created_id_idx
    ON audit_logs (created_at, id);
DROP INDEX audit_logs_org_created_idx;
DROP INDEX audit_logs_created_idx;

-- The action filter of a tenant ("its failed sign-ins"), in keyset order:
-- without it such a page reads the tenant's rows until it has found
-- enough, and at a million rows a tenant that seldom fails reads them all.
CREATE INDEX audit_logs_org_action_created_id_idx
    ON audit_logs (organization_id, action, created_at, id);

-- The resource_id filter, and a user's activity: the rows about them
-- (resource_id) next to the ones they did (audit_logs_actor_created_idx).
CREATE INDEX audit_logs_resource_id_created_idx
    ON audit_logs (resource_id, created_at) WHERE resource_id IS NOT NULL;

-- A timestamp to the microsecond, RFC 3339 UTC: keyset positions in
-- cursors and between export batches must not lose the fraction.
CREATE FUNCTION um_ts_exact(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- One CSV field (RFC 4180): quoted, quotes doubled; NULL is the empty
-- field without quotes, as in COPY ... CSV.  A text that a spreadsheet
-- would run as a formula (= + - @, and tab or carriage return before
-- them) gets a leading apostrophe, so an exported trail cannot carry a
-- formula someone typed into a user agent.
CREATE FUNCTION um_csv_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL THEN ''
        WHEN left(v, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
            THEN '"''' || replace(v, '"', '""') || '"'
        ELSE '"' || replace(v, '"', '""') || '"'
    END
$$;

-- A CSV record of the fields, without the line break.
CREATE FUNCTION um_csv_line(p_fields text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(um_csv_field(f), ',' ORDER BY n)
      FROM unnest(p_fields) WITH ORDINALITY AS x (f, n)
$$;

-- An audit row as the API shows it.
CREATE FUNCTION um_audit_json(a audit_logs, p_actor_email text) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', a.id,
        'created_at', um_ts(a.created_at),
        'organization_id', a.organization_id,
        'actor_id', a.actor_id,
        'actor_email', p_actor_email,
        'action', a.action,
        'resource', a.resource,
        'resource_id', a.resource_id,
        'status', a.status,
        'ip', host(a.ip),
        'user_agent', a.user_agent,
        'changes', a.changes,
        'metadata', a.metadata)
$$;

-- The same row as a CSV record; the columns of the header line that
-- src/api/um_audit.c writes.
CREATE FUNCTION um_audit_csv(a audit_logs, p_actor_email text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT um_csv_line(ARRAY[
        a.id::text, um_ts(a.created_at), a.organization_id::text,
        a.actor_id::text, p_actor_email, a.action, a.resource,
        a.resource_id, a.status, host(a.ip), a.user_agent,
        a.changes::text, a.metadata::text])
$$;

-- GET /audit/logs: one page, newest first, of the rows that match.
--
-- p_org NULL: every tenant (a super admin).  p_action matches exactly,
-- p_action_prefix the start ("auth." for "auth.*").  A cursor (the
-- position of the last row of the previous page) wins over p_offset;
-- "skipped" then tells how many rows come before the page.  last_ts and
-- last_id are the position of the page's last row, for the next cursor.
--
-- The functions below that take optional filters plan every call for its
-- values (force_custom_plan): a cached generic plan of
-- "(p_org IS NULL OR organization_id = p_org)" could not use an index.
CREATE FUNCTION um_audit_list(p_org uuid, p_actor uuid, p_action text,
                              p_action_prefix text, p_resource text,
                              p_resource_id text, p_status text,
                              p_from timestamptz, p_to timestamptz,
                              p_cursor_ts timestamptz, p_cursor_id uuid,
                              p_limit integer, p_offset bigint,
                              OUT total bigint, OUT skipped bigint,
                              OUT items json, OUT last_ts text,
                              OUT last_id uuid)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    SELECT count(*),
           count(*) FILTER (WHERE (a.created_at, a.id)
                                  >= (p_cursor_ts, p_cursor_id))
      INTO total, skipped
      FROM audit_logs a
     WHERE (p_org IS NULL OR a.organization_id = p_org)
       AND (p_actor IS NULL OR a.actor_id = p_actor)
       AND (p_action IS NULL OR a.action = p_action)
       AND (p_action_prefix IS NULL OR starts_with(a.action, p_action_prefix))
       AND (p_resource IS NULL OR a.resource = p_resource)
       AND (p_resource_id IS NULL OR a.resource_id = p_resource_id)
       AND (p_status IS NULL OR a.status = p_status)
       AND (p_from IS NULL OR a.created_at >= p_from)
       AND (p_to IS NULL OR a.created_at <= p_to);

    IF p_cursor_ts IS NULL THEN
        skipped := p_offset;
    END IF;

    SELECT coalesce(json_agg(um_audit_json(p.a, p.email)
                             ORDER BY p.ts DESC, p.id DESC), '[]'),
           (array_agg(um_ts_exact(p.ts) ORDER BY p.ts, p.id))[1],
           (array_agg(p.id ORDER BY p.ts, p.id))[1]
      INTO items, last_ts, last_id
      FROM (SELECT a, u.email::text AS email, a.created_at AS ts, a.id
              FROM audit_logs a
              LEFT JOIN users u ON u.id = a.actor_id
             WHERE (p_org IS NULL OR a.organization_id = p_org)
               AND (p_actor IS NULL OR a.actor_id = p_actor)
               AND (p_action IS NULL OR a.action = p_action)
               AND (p_action_prefix IS NULL
                    OR starts_with(a.action, p_action_prefix))
               AND (p_resource IS NULL OR a.resource = p_resource)
               AND (p_resource_id IS NULL OR a.resource_id = p_resource_id)
               AND (p_status IS NULL OR a.status = p_status)
               AND (p_from IS NULL OR a.created_at >= p_from)
               AND (p_to IS NULL OR a.created_at <= p_to)
               AND (p_cursor_ts IS NULL
                    OR (a.created_at, a.id) < (p_cursor_ts, p_cursor_id))
             ORDER BY a.created_at DESC, a.id DESC
             LIMIT p_limit
            OFFSET CASE WHEN p_cursor_ts IS NULL THEN p_offset ELSE 0 END) p;
END
$$;

-- GET /audit/export, first step: the export is itself audited, and the
-- answer is the upper bound of the rows it sends: what exists now (the
-- audit row of the export included), or less when end_date says so.  Rows
-- written while the export runs stay out of it.
CREATE FUNCTION um_audit_export_start(p_org uuid, p_user uuid,
                                      p_format text, p_actor uuid,
                                      p_action text, p_resource text,
                                      p_resource_id text, p_status text,
                                      p_from timestamptz, p_to timestamptz,
                                      p_ip text, p_ua text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM um_audit(p_org, p_user, 'audit.export', 'audit_log', NULL,
                     'success', p_ip, p_ua, NULL,
                     jsonb_build_object(
                         'format', p_format,
                         'filters', jsonb_strip_nulls(jsonb_build_object(
                             'user_id', p_actor,
                             'action', p_action,
                             'resource', p_resource,
                             'resource_id', p_resource_id,
                             'status', p_status,
                             'start_date', um_ts_exact(p_from),
                             'end_date', um_ts_exact(p_to)))));

    RETURN um_ts_exact(least(now(), p_to));
END
$$;

-- GET /audit/export: the next batch, oldest first, after the position
-- (p_after_ts, p_after_id) and up to p_to, the bound fixed when the export
-- began.  Each row comes as one line of text, CSV or JSON; the last row
-- also carries its position, where the next batch starts.
CREATE FUNCTION um_audit_export_batch(p_csv boolean, p_org uuid,
                                      p_actor uuid, p_action text,
                                      p_action_prefix text, p_resource text,
                                      p_resource_id text, p_status text,
                                      p_after_ts timestamptz,
                                      p_after_id uuid, p_to timestamptz,
                                      p_limit integer)
RETURNS TABLE (line text, last_ts text, last_id uuid)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    SELECT CASE WHEN p_csv THEN um_audit_csv(b.a, b.email)
                ELSE um_audit_json(b.a, b.email)::text END,
           CASE WHEN lead(true) OVER w IS NULL THEN um_ts_exact(b.ts) END,
           CASE WHEN lead(true) OVER w IS NULL THEN b.id END
      FROM (SELECT a, u.email::text AS email, a.created_at AS ts, a.id
              FROM audit_logs a
              LEFT JOIN users u ON u.id = a.actor_id
             WHERE (p_org IS NULL OR a.organization_id = p_org)
               AND (a.created_at, a.id) > (p_after_ts, p_after_id)
               AND a.created_at <= p_to
               AND (p_actor IS NULL OR a.actor_id = p_actor)
               AND (p_action IS NULL OR a.action = p_action)
               AND (p_action_prefix IS NULL
                    OR starts_with(a.action, p_action_prefix))
               AND (p_resource IS NULL OR a.resource = p_resource)
               AND (p_resource_id IS NULL OR a.resource_id = p_resource_id)
               AND (p_status IS NULL OR a.status = p_status)
             ORDER BY a.created_at, a.id
             LIMIT p_limit) b
    WINDOW w AS (ORDER BY b.ts, b.id);
END
$$;

-- GET /audit/user/{id}/activity: what a user did, and what was done to
-- them, in the last p_days days; one page of it and a summary.  NULL when
-- the user is not one of p_org's (any tenant when p_org is NULL).
CREATE FUNCTION um_audit_user_activity(p_org uuid, p_user uuid,
                                       p_days integer, p_page integer,
                                       p_page_size integer, p_offset bigint)
RETURNS json
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    since      timestamptz := now() - make_interval(days => p_days);
    n          bigint;
    by_action  json;
    items      json;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users
                    WHERE id = p_user
                      AND (p_org IS NULL OR organization_id = p_org))
    THEN
        RETURN NULL;
    END IF;

    SELECT coalesce(sum(c.n), 0),
           coalesce(json_object_agg(c.action, c.n ORDER BY c.action), '{}')
      INTO n, by_action
      FROM (SELECT a.action, count(*) AS n
              FROM audit_logs a
             WHERE (a.actor_id = p_user OR a.resource_id = p_user::text)
               AND a.created_at >= since
               AND (p_org IS NULL OR a.organization_id = p_org)
             GROUP BY a.action) c;

    SELECT coalesce(json_agg(um_audit_json(p.a, p.email)
                             ORDER BY p.ts DESC, p.id DESC), '[]')
      INTO items
      FROM (SELECT a, u.email::text AS email, a.created_at AS ts, a.id
              FROM audit_logs a
              LEFT JOIN users u ON u.id = a.actor_id
             WHERE (a.actor_id = p_user OR a.resource_id = p_user::text)
               AND a.created_at >= since
               AND (p_org IS NULL OR a.organization_id = p_org)
             ORDER BY a.created_at DESC, a.id DESC
             LIMIT p_page_size OFFSET p_offset) p;

    RETURN json_build_object(
        'user_id', p_user,
        'days', p_days,
        'since', um_ts(since),
        'summary', json_build_object('total', n, 'by_action', by_action),
        'logs', items,
        'total', n,
        'page', p_page,
        'page_size', p_page_size,
        'per_page', p_page_size,
        'pages', (n + p_page_size - 1) / p_page_size,
        'has_next', p_offset + p_page_size < n,
        'has_prev', p_offset > 0,
        'next_cursor', NULL);
END
$$;

-- GET /audit/organization/{id}/stats: the last p_days days of a tenant in
-- figures.  NULL when the organization does not exist or is not p_scope
-- (any organization when p_scope is NULL).  Days are UTC days.
CREATE FUNCTION um_audit_org_stats(p_scope uuid, p_org uuid, p_days integer)
RETURNS json
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    since  timestamptz := now() - make_interval(days => p_days);
    stats  json;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM organizations
                    WHERE id = p_org AND deleted_at IS NULL
                      AND (p_scope IS NULL OR id = p_scope))
    THEN
        RETURN NULL;
    END IF;

    WITH g AS (
        SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, a.action,
               a.status, count(*) AS n
          FROM audit_logs a
         WHERE a.organization_id = p_org AND a.created_at >= since
         GROUP BY 1, 2, 3)
    SELECT json_build_object(
        'organization_id', p_org,
        'days', p_days,
        'since', um_ts(since),
        'total', (SELECT coalesce(sum(n), 0) FROM g),
        'by_action',
            (SELECT coalesce(json_object_agg(action, n ORDER BY action), '{}')
               FROM (SELECT action, sum(n) AS n FROM g GROUP BY action) x),
        'by_status', json_build_object(
            'success', (SELECT coalesce(sum(n), 0) FROM g
                         WHERE status = 'success'),
            'failure', (SELECT coalesce(sum(n), 0) FROM g
                         WHERE status = 'failure')),
        'by_day',
            (SELECT json_agg(json_build_object(
                        'date', to_char(d.day, 'YYYY-MM-DD'),
                        'count', coalesce((SELECT sum(n) FROM g
                                            WHERE g.day = d.day), 0))
                    ORDER BY d.day)
               FROM generate_series((since AT TIME ZONE 'UTC')::date,
                                    (now() AT TIME ZONE 'UTC')::date,
                                    interval '1 day') AS d (day)),
        'failed_logins', (SELECT coalesce(sum(n), 0) FROM g
                           WHERE action = 'auth.login_failed'),
        'active_users', (SELECT count(DISTINCT a.actor_id)
                           FROM audit_logs a
                          WHERE a.organization_id = p_org
                            AND a.created_at >= since))
      INTO stats;

    RETURN stats;
END
$$;
