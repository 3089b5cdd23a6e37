-- User search at a million users (issue 4): a page costs what the page
-- needs, not what all the matches need.
--
-- GET /users/search ranked every match, and ts_rank() rebuilt each
-- match's tsvector from the names and the email; GET /users counted every
-- match for its total.  A word that a third of a tenant had took a second.
-- Now:
--
--   * the tsvector is stored with the user (search_tsv), and its GIN index
--     holds only live users, the only ones search shows;
--   * a search looks at no more than um_search_cap() + 1 matches: it ranks
--     those, and builds JSON for the page's users alone;
--   * totals are exact up to that cap.  Past it the answer says so
--     (total_is_estimate) and total is the cap: "at least this many".
--     Whether a next page exists is always known exactly (has_next).
--
-- The table is rewritten once to fill search_tsv (about a minute for a
-- million users).


-- How many matches a search ranks and a total counts, at least.  The
-- figure a list answer shows as total when more users match.
CREATE FUNCTION um_search_cap() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 1000::bigint
$$;


-- What GET /users/search matches: the names (weight A), the email and the
-- username (weight B), English stemming.  In emails, usernames and
-- queries alike "@", ".", "+" and "_" separate words, so "example.com"
-- finds "john@example.com" and a whole address finds its user.  Each part
-- is a tsvector of its own, so a phrase never runs from one into the next.
ALTER TABLE users ADD COLUMN search_tsv tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig,
                              coalesce(first_name, '') || ' '
                              || coalesce(last_name, '')), 'A')
        || setweight(to_tsvector('english'::regconfig,
                                 translate(coalesce(email::text, ''),
                                           '@.+_', '    ')), 'B')
        || setweight(to_tsvector('english'::regconfig,
                                 translate(coalesce(username::text, ''),
                                           '@.+_', '    ')), 'B'))
    STORED;

DROP INDEX users_fts_idx;
DROP FUNCTION um_user_tsv(text, text, text);

-- GET /users/search: full text within a tenant, live users only
CREATE INDEX users_search_tsv_idx
    ON users USING gin (organization_id, search_tsv)
    WHERE deleted_at IS NULL;


-- GET /users.  As in 0005_users.sql, but the total is counted up to
-- um_search_cap() rows past those before the page (or the cursor), and
-- has_next says whether a row follows the page.  With a cursor, the rows
-- before it are counted up to the cap as well: beyond it, cursor_offset
-- (and so the page number) and total are lower bounds.
DROP FUNCTION um_list_users(jsonb, jsonb, integer, bigint, text);

CREATE FUNCTION um_list_users(p_caller jsonb, p_filters jsonb,
                              p_limit integer, p_offset bigint,
                              p_cursor text,
                              OUT users jsonb, OUT total bigint,
                              OUT total_is_estimate boolean,
                              OUT has_next boolean,
                              OUT cursor_offset bigint, OUT next_cursor text,
                              OUT filters jsonb)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    sort_by   text := coalesce(p_filters->>'sort_by', 'created_at');
    dir       text := lower(coalesce(p_filters->>'sort_order', 'desc'));
    active    boolean := (p_filters->>'is_active')::boolean;
    deleted   boolean := coalesce((p_filters->>'include_deleted')::boolean,
                                  false);
    tenant    uuid := (p_caller->>'tenant')::uuid;
    pattern   text := um_like_pattern(p_filters->>'search');
    cap       bigint;
    key_expr  text;
    keytype   text;
    cond      text := 'true';
    after_c   text := 'false';
    c         jsonb;
    c_key     text;
    c_id      uuid;
    last_key  text;
    last_id   uuid;
    n         bigint;
    before    bigint := 0;
    ids       uuid[];
BEGIN
    SELECT k.expr, k.type INTO key_expr, keytype
      FROM um_user_sort_key(sort_by) k;

    IF key_expr IS NULL OR dir NOT IN ('asc', 'desc') THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'unknown sort', DETAIL = 'sort_by';
    END IF;

    IF tenant IS NOT NULL THEN
        cond := cond || ' AND u.organization_id = $1';
    END IF;

    IF NOT deleted THEN
        cond := cond || ' AND u.deleted_at IS NULL';
    END IF;

    IF p_filters->>'search' IS NOT NULL THEN
        cond := cond || ' AND um_user_search_text(u.first_name, u.last_name,'
                     || ' u.email::text, u.username::text) ILIKE $2';
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
                       ' WHERE %s AND NOT (%s) LIMIT $9) b', cond, after_c)
           INTO before
          USING tenant, pattern,
                active, p_filters->>'kyc_status', p_filters->>'department',
                p_filters->>'role', c_key, c_id, um_search_cap() + 1;

        total_is_estimate := before > um_search_cap();
        before := least(before, um_search_cap());
        cursor_offset := before;
    END IF;

    -- The rows after the cursor (or all of them), up to one past the cap
    -- (at least one past the page: whether a next page exists is known).
    -- When that is all of them, the page is cut from them, in the order
    -- of the sort: no second search.
    cap := greatest(um_search_cap(), p_offset + p_limit);

    EXECUTE format('SELECT count(*),'
                   ' (array_agg(m.id ORDER BY m.k %1$s, m.id %1$s))'
                   '     [$10 + 1 : $10 + $9]'
                   ' FROM (SELECT u.id, %2$s AS k FROM users u'
                   '        WHERE %3$s AND %4$s LIMIT $11) m',
                   dir, key_expr, cond, CASE WHEN p_cursor IS NULL THEN 'true'
                                             ELSE after_c END)
       INTO n, ids
      USING tenant, pattern,
            active, p_filters->>'kyc_status', p_filters->>'department',
            p_filters->>'role', c_key, c_id, p_limit, p_offset, cap + 1;

    has_next := n > p_offset + p_limit;
    total_is_estimate := coalesce(total_is_estimate, false) OR n > cap;
    total := before + least(n, cap);

    IF n <= cap THEN
        EXECUTE format('SELECT coalesce(jsonb_agg(um_user_json(u, true)'
                       '                          ORDER BY x.n), ''[]''),'
                       ' (array_agg((%s)::text ORDER BY x.n DESC))[1],'
                       ' (array_agg(u.id ORDER BY x.n DESC))[1]'
                       ' FROM unnest($1) WITH ORDINALITY x (id, n)'
                       ' JOIN users u ON u.id = x.id', key_expr)
           INTO users, last_key, last_id
          USING ids;
    ELSE
        -- many match: the sort's index finds the page's rows early
        EXECUTE format('SELECT coalesce(jsonb_agg(um_user_json(p.u, true)'
                       '                          ORDER BY p.n), ''[]''),'
                       ' (array_agg(p.k ORDER BY p.n DESC))[1],'
                       ' (array_agg((p.u).id ORDER BY p.n DESC))[1]'
                       ' FROM (SELECT q.*, row_number() OVER () AS n'
                       '  FROM (SELECT u, (%1$s)::text AS k FROM users u'
                       '   WHERE %2$s AND %3$s'
                       '   ORDER BY %1$s %4$s, u.id %4$s'
                       '   LIMIT $9 OFFSET $10) q) p',
                       key_expr, cond, CASE WHEN p_cursor IS NULL THEN 'true'
                                            ELSE after_c END, dir)
           INTO users, last_key, last_id
          USING tenant, pattern,
                active, p_filters->>'kyc_status', p_filters->>'department',
                p_filters->>'role', c_key, c_id, p_limit, p_offset;
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


-- GET /users/search?q=: full-text search (stemming, "phrases", -not, or),
-- best matches first.  The first um_search_cap() + 1 matches the index
-- yields are ranked (all of them, unless the query is that broad; or as
-- many as the page asked for needs), and only the page's users are read
-- whole.  A query of stop words alone finds nothing; the notice
-- PostgreSQL raises for it is kept from the client.
DROP FUNCTION um_search_users(jsonb, text, integer, bigint);

CREATE FUNCTION um_search_users(p_caller jsonb, p_q text, p_limit integer,
                                p_offset bigint,
                                OUT users jsonb, OUT total bigint,
                                OUT total_is_estimate boolean,
                                OUT has_next boolean)
LANGUAGE plpgsql STABLE SET client_min_messages = warning AS $$
DECLARE
    tenant  uuid := (p_caller->>'tenant')::uuid;
    cap     bigint := greatest(um_search_cap(), p_offset + p_limit);
    cond    text := 'u.deleted_at IS NULL'
                    ' AND u.search_tsv @@ um_user_tsquery($2)';
    n       bigint;
BEGIN
    IF tenant IS NOT NULL THEN
        cond := 'u.organization_id = $1 AND ' || cond;
    END IF;

    EXECUTE format('WITH found AS MATERIALIZED ('
                   '  SELECT u.id, u.last_name, u.first_name,'
                   '         ts_rank(u.search_tsv, um_user_tsquery($2))'
                   '             AS rank'
                   '    FROM users u WHERE %s LIMIT $5),'
                   ' page AS ('
                   '  SELECT * FROM found f'
                   '   ORDER BY f.rank DESC, f.last_name, f.first_name, f.id'
                   '   LIMIT $3 OFFSET $4)'
                   ' SELECT (SELECT count(*) FROM found),'
                   '  (SELECT coalesce(jsonb_agg(um_user_json(u, true)'
                   '                             ORDER BY p.rank DESC,'
                   '                             p.last_name, p.first_name,'
                   '                             p.id), ''[]'')'
                   '     FROM page p JOIN users u ON u.id = p.id)', cond)
       INTO n, users
      USING tenant, p_q, p_limit, p_offset, cap + 1;

    has_next := n > p_offset + p_limit;
    total_is_estimate := n > cap;
    total := least(n, cap);
END
$$;
