-- The users of a page as text JSON.
--
-- GET /users and GET /users/search built each user of a page as jsonb and
-- aggregated them with jsonb_agg: about 46 us a user, measured over 4,000
-- users, against 12 to 18 us for json_agg of um_user_doc (0014).  At 20
-- users a page that is about half a millisecond of every list and search.
-- The two functions are those of 0011_user_search.sql, restated whole (a
-- function's result type cannot be changed in place); only their "users"
-- result, now json, and the statement that builds it differ.


DROP FUNCTION um_list_users(jsonb, jsonb, integer, bigint, text);

CREATE FUNCTION um_list_users(p_caller jsonb, p_filters jsonb,
                              p_limit integer, p_offset bigint,
                              p_cursor text,
                              OUT users json, OUT total bigint,
                              OUT total_is_estimate boolean,
                              OUT has_next boolean,
                              OUT cursor_offset bigint, OUT next_cursor text,
                              OUT filters jsonb)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan
SET effective_io_concurrency = 0 AS $$
DECLARE
    sort_by   text := coalesce(p_filters->>'sort_by', 'created_at');
    dir       text := lower(coalesce(p_filters->>'sort_order', 'desc'));
    active    boolean := (p_filters->>'is_active')::boolean;
    deleted   boolean := coalesce((p_filters->>'include_deleted')::boolean,
                                  false);
    tenant    uuid := (p_caller->>'tenant')::uuid;
    pattern   text := lower(um_like_pattern(p_filters->>'search'));
    cap       bigint;
    key_expr  text;
    keytype   text;
    cond      text := 'true';
    found_c   text;
    order_c   text := '';
    after_c   text := 'false';
    c         jsonb;
    c_key     text;
    c_id      uuid;
    last_key  text;
    last_id   uuid;
    n         bigint;
    before    bigint := 0;
    ids       uuid[];
    trigrams  text[];
BEGIN
    SELECT k.expr, k.type INTO key_expr, keytype
      FROM um_user_sort_key(sort_by) k;

    IF key_expr IS NULL OR dir NOT IN ('asc', 'desc') THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'unknown sort', DETAIL = 'sort_by';
    END IF;

    IF NOT deleted THEN
        cond := cond || ' AND u.deleted_at IS NULL';
    END IF;

    IF active IS NOT NULL THEN
        cond := cond || ' AND u.is_active = $3';
    END IF;

    IF p_filters->>'kyc_status' IS NOT NULL THEN
        cond := cond || ' AND u.kyc_status = $4';
    END IF;

    IF p_filters->>'department' IS NOT NULL THEN
        cond := cond || ' AND lower(u.department) = lower($5)';
    END IF;

    IF p_filters->>'role' IS NOT NULL THEN
        cond := cond || ' AND (um_builtin_role(u.user_type) = $6'
                     || ' OR ($6 = ''super_admin'' AND u.is_super_admin)'
                     || ' OR EXISTS (SELECT 1 FROM user_roles ur'
                     || ' JOIN roles r ON r.id = ur.role_id'
                     || ' WHERE ur.user_id = u.id AND r.deleted_at IS NULL'
                     || ' AND r.name = $6::citext))';
    END IF;

    -- Finding the matches within a tenant: the tenant's trigrams find
    -- them (when the text has any: two letters have none; and only among
    -- live users), the other conditions only check them.  IS TRUE keeps
    -- the planner from ANDing to the index the bitmap of a whole tenant
    -- (an index on organization_id) or that of the index across tenants,
    -- each of which costs more than the search.  The page itself, when
    -- many match, is better found through the sort's index: it keeps cond.
    trigrams := um_tenant_trigrams(tenant, p_filters->>'search');

    IF tenant IS NOT NULL AND NOT deleted AND cardinality(trigrams) > 0
    THEN
        found_c := cond || ' AND (u.organization_id = $1) IS TRUE'
                   || ' AND (u.search_text LIKE $2) IS TRUE'
                   || ' AND um_tenant_trigrams(u.organization_id,'
                   || ' u.search_text) @> $12';
    END IF;

    IF tenant IS NOT NULL THEN
        cond := cond || ' AND u.organization_id = $1';
    END IF;

    IF p_filters->>'search' IS NOT NULL THEN
        cond := cond || ' AND u.search_text LIKE $2';
    END IF;

    -- Without trigrams the matches are taken in the order of the sort
    -- (its index finds them): the first ones hold the page.
    IF found_c IS NULL THEN
        found_c := cond;
        order_c := format('ORDER BY %1$s %2$s, u.id %2$s', key_expr, dir);
    END IF;

    IF p_cursor IS NOT NULL THEN
        BEGIN
            c := convert_from(decode(rpad(translate(p_cursor, '-_', '+/'),
                                          (length(p_cursor) + 3) / 4 * 4,
                                          '='),
                                     'base64'),
                              'UTF8')::jsonb;
            c_key := c->>2;
            c_id := (c->>3)::uuid;
            EXECUTE format('SELECT $1::%s', keytype) USING c_key;
        EXCEPTION WHEN OTHERS THEN
            c := NULL;
        END;

        IF jsonb_typeof(c) IS DISTINCT FROM 'array' OR c_key IS NULL
           OR c_id IS NULL
        THEN
            RAISE EXCEPTION USING ERRCODE = 'UMVAL',
                MESSAGE = 'cursor is not a valid cursor', DETAIL = 'cursor';
        END IF;

        IF c->>0 IS DISTINCT FROM sort_by OR c->>1 IS DISTINCT FROM dir THEN
            RAISE EXCEPTION USING ERRCODE = 'UMVAL',
                MESSAGE = 'the cursor belongs to another sort order',
                DETAIL = 'cursor';
        END IF;

        after_c := format('(%s, u.id) %s ($7::%s, $8)', key_expr,
                        CASE dir WHEN 'asc' THEN '>' ELSE '<' END, keytype);
        p_offset := 0;

        -- where the cursor is: the rows up to it, up to the cap
        EXECUTE format('SELECT count(*) FROM (SELECT FROM users u'
                       ' WHERE %s AND NOT (%s) LIMIT $11) b', found_c,
                       after_c)
           INTO before
          USING tenant, pattern,
                active, p_filters->>'kyc_status', p_filters->>'department',
                p_filters->>'role', c_key, c_id, p_limit, p_offset,
                um_search_cap() + 1, trigrams;

        total_is_estimate := before > um_search_cap();
        before := least(before, um_search_cap());
        cursor_offset := before;
    END IF;

    -- The rows after the cursor (or all of them), up to one past the cap
    -- (at least one past the page: whether a next page exists is known).
    -- The page is cut from them, in the order of the sort, when they were
    -- taken in that order or are all the matches: no second search.
    -- Otherwise many match, and the sort's index finds the page's rows
    -- early.
    cap := greatest(um_search_cap(), p_offset + p_limit);

    IF p_cursor IS NULL AND tenant IS NOT NULL AND NOT deleted
       AND sort_by = 'created_at' AND dir = 'desc' AND active IS NULL
       AND p_filters->>'kyc_status' IS NULL
       AND p_filters->>'department' IS NULL AND p_filters->>'role' IS NULL
       AND (p_filters->>'search' IS NULL OR cardinality(trigrams) > 0)
    THEN
        -- A tenant's list, newest first, with or without a search: the
        -- common request, in static statements whose plans are kept
        -- (planning the statements below costs about as much as running
        -- them).  The same plans serve every search text: only the
        -- tenant's trigrams, or the sort's index, can find the rows.
        IF p_filters->>'search' IS NULL THEN
            SELECT count(*),
                   (array_agg(m.id ORDER BY m.created_at DESC, m.id DESC))
                       [p_offset + 1 : p_offset + p_limit]
              INTO n, ids
              FROM (SELECT u.id, u.created_at FROM users u
                     WHERE u.organization_id = tenant
                       AND u.deleted_at IS NULL
                     ORDER BY u.created_at DESC, u.id DESC
                     LIMIT cap + 1) m;
        ELSE
            SELECT count(*),
                   (array_agg(m.id ORDER BY m.created_at DESC, m.id DESC))
                       [p_offset + 1 : p_offset + p_limit]
              INTO n, ids
              FROM (SELECT u.id, u.created_at FROM users u
                     WHERE um_tenant_trigrams(u.organization_id,
                                              u.search_text) @> trigrams
                       AND u.deleted_at IS NULL
                       AND (u.organization_id = tenant) IS TRUE
                       AND (u.search_text LIKE pattern) IS TRUE
                     LIMIT cap + 1) m;

            IF n > cap THEN
                SELECT array_agg(p.id ORDER BY p.created_at DESC, p.id DESC)
                  INTO ids
                  FROM (SELECT u.id, u.created_at FROM users u
                         WHERE u.organization_id = tenant
                           AND u.deleted_at IS NULL
                           AND (u.search_text LIKE pattern) IS TRUE
                         ORDER BY u.created_at DESC, u.id DESC
                         LIMIT p_limit OFFSET p_offset) p;
            END IF;
        END IF;
    ELSE
        EXECUTE format('SELECT count(*),'
                       ' (array_agg(m.id ORDER BY m.k %1$s, m.id %1$s))'
                       '     [$10 + 1 : $10 + $9]'
                       ' FROM (SELECT u.id, %2$s AS k FROM users u'
                       '        WHERE %3$s AND %4$s %5$s LIMIT $11) m',
                       dir, key_expr, found_c,
                       CASE WHEN p_cursor IS NULL THEN 'true'
                            ELSE after_c END,
                       order_c)
           INTO n, ids
          USING tenant, pattern,
                active, p_filters->>'kyc_status', p_filters->>'department',
                p_filters->>'role', c_key, c_id, p_limit, p_offset, cap + 1,
                trigrams;

        IF n > cap AND order_c = '' THEN
            EXECUTE format('SELECT array_agg(p.id ORDER BY p.n)'
                           ' FROM (SELECT q.*, row_number() OVER () AS n'
                           '  FROM (SELECT u.id FROM users u'
                           '   WHERE %2$s AND %3$s'
                           '   ORDER BY %1$s %4$s, u.id %4$s'
                           '   LIMIT $9 OFFSET $10) q) p',
                           key_expr, cond,
                           CASE WHEN p_cursor IS NULL THEN 'true'
                                ELSE after_c END, dir)
               INTO ids
              USING tenant, pattern,
                    active, p_filters->>'kyc_status',
                    p_filters->>'department', p_filters->>'role', c_key,
                    c_id, p_limit, p_offset, NULL, trigrams;
        END IF;
    END IF;

    has_next := n > p_offset + p_limit;
    total_is_estimate := coalesce(total_is_estimate, false) OR n > cap;
    total := before + least(n, cap);

    SELECT coalesce(json_agg(um_user_doc(u, true) ORDER BY x.n), '[]')
      INTO users
      FROM unnest(ids) WITH ORDINALITY x (id, n)
      JOIN users u ON u.id = x.id;

    last_id := ids[cardinality(ids)];

    -- the cursor: the sort key of the page's last user, as text
    IF has_next AND sort_by = 'created_at' THEN
        SELECT u.created_at::text INTO last_key FROM users u
         WHERE u.id = last_id;

    ELSIF has_next THEN
        EXECUTE format('SELECT (%s)::text FROM users u WHERE u.id = $1',
                       key_expr)
           INTO last_key
          USING last_id;
    END IF;

    IF has_next THEN
        next_cursor := rtrim(translate(encode(convert_to(
                           jsonb_build_array(sort_by, dir, last_key,
                                             last_id)::text, 'UTF8'),
                           'base64'), E'+/\n', '-_'), '=');
    END IF;

    filters := jsonb_build_object(
        'search', p_filters->'search',
        'is_active', p_filters->'is_active',
        'status', p_filters->'status',
        'kyc_status', p_filters->'kyc_status',
        'department', p_filters->'department',
        'role', p_filters->'role',
        'include_deleted', deleted,
        'sort_by', sort_by,
        'sort_order', dir);
END
$$;


DROP FUNCTION um_search_users(jsonb, text, integer, bigint);

CREATE FUNCTION um_search_users(p_caller jsonb, p_q text, p_limit integer,
                                p_offset bigint,
                                OUT users json, OUT total bigint,
                                OUT total_is_estimate boolean,
                                OUT has_next boolean)
LANGUAGE plpgsql STABLE SET client_min_messages = warning
SET plan_cache_mode = force_generic_plan SET effective_io_concurrency = 0 AS $$
DECLARE
    tenant  uuid := (p_caller->>'tenant')::uuid;
    q       tsquery := um_user_tsquery(p_q);
    tq      tsquery;
    cap     bigint := greatest(um_search_cap(), p_offset + p_limit);
    n       bigint;
    ids     uuid[];
BEGIN
    IF tenant IS NOT NULL THEN
        tq := um_tenant_tsquery(tenant, q);

        -- The tenant's words find the tenant's users: organization_id is
        -- only checked (IS TRUE keeps the planner from ANDing the bitmap
        -- of a whole tenant to the index's).
        SELECT count(*),
               (array_agg(f.id ORDER BY f.rank DESC, f.last_name,
                          f.first_name, f.id))[p_offset + 1
                                               : p_offset + p_limit]
          INTO n, ids
          FROM (SELECT u.id, u.last_name, u.first_name,
                       ts_rank(u.search_tsv, q) AS rank
                  FROM users u
                 WHERE um_tenant_tsv(u.organization_id, u.search_tsv) @@ tq
                   AND u.deleted_at IS NULL
                   AND (u.organization_id = tenant) IS TRUE
                 LIMIT cap + 1) f;
    ELSE
        SELECT count(*),
               (array_agg(f.id ORDER BY f.rank DESC, f.last_name,
                          f.first_name, f.id))[p_offset + 1
                                               : p_offset + p_limit]
          INTO n, ids
          FROM (SELECT u.id, u.last_name, u.first_name,
                       ts_rank(u.search_tsv, q) AS rank
                  FROM users u
                 WHERE u.search_tsv @@ q AND u.deleted_at IS NULL
                 LIMIT cap + 1) f;
    END IF;

    SELECT coalesce(json_agg(um_user_doc(u, true) ORDER BY x.n), '[]')
      INTO users
      FROM unnest(ids) WITH ORDINALITY x (id, n)
      JOIN users u ON u.id = x.id;

    has_next := n > p_offset + p_limit;
    total_is_estimate := n > cap;
    total := least(n, cap);
END
$$;
