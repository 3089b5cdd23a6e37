-- Organizations (the tenant's life cycle) and locations (seed 002).
--
-- Each mutating endpoint calls one function below: the change and its
-- audit row commit together.  Client errors use the SQLSTATEs of
-- 0002_auth.sql: UMNOF (404), UMFBD (403), UMVAL (422, DETAIL names the
-- field) and UMCON (409).

-- {field: {old, new}} for the fields a request sent whose value changed
CREATE FUNCTION um_changed_fields(p_old jsonb, p_new jsonb, p_sent jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k,
                        jsonb_build_object(
                            'old', coalesce(p_old->k, 'null'::jsonb),
                            'new', coalesce(p_new->k, 'null'::jsonb))),
                    '{}')
      FROM jsonb_object_keys(p_sent) AS k
     WHERE (p_old->k) IS DISTINCT FROM (p_new->k)
$$;


-- ------------------------------------------------------------------------
-- organizations

CREATE FUNCTION um_organization_json(o organizations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', o.id,
        'name', o.name,
        'slug', o.slug,
        'description', o.description,
        'max_users', o.max_users,
        'is_active', o.is_active,
        'allow_self_registration', o.allow_self_registration,
        'settings', o.settings,
        'created_by', o.created_by,
        'created_at', um_ts(o.created_at),
        'updated_at', um_ts(o.updated_at),
        'deleted_at', um_ts(o.deleted_at))
$$;

-- Not deleted.  What belongs to a deleted organization is gone with it:
-- found by no endpoint, even while an access token of its users lives on.
CREATE FUNCTION um_organization_live(p_org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM organizations
                    WHERE id = p_org AND deleted_at IS NULL)
$$;

-- the users an organization counts against its max_users
CREATE FUNCTION um_organization_users(p_org uuid) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM users
     WHERE organization_id = p_org AND deleted_at IS NULL
$$;

-- what the API shows of an organization: the row and its user count
CREATE FUNCTION um_organization_view(o organizations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT um_organization_json(o)
           || jsonb_build_object('user_count', um_organization_users(o.id))
$$;

-- rules the table's CHECKs also hold, raised with the field's name
CREATE FUNCTION um_organization_check(p_fields jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_fields ? 'name' AND btrim(p_fields->>'name') = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'name',
            MESSAGE = 'name must not be empty';
    END IF;

    IF jsonb_typeof(p_fields->'max_users') = 'number'
       AND (p_fields->>'max_users')::bigint < 1
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'max_users',
            MESSAGE = 'max_users must be at least 1';
    END IF;
END
$$;

-- POST /organizations.  The trigger of 0004_rbac.sql gives the new
-- organization its built-in roles in the same transaction.
CREATE FUNCTION um_organization_create(p_actor uuid, p_fields jsonb,
                                       p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    o  organizations;
BEGIN
    PERFORM um_organization_check(p_fields);

    INSERT INTO organizations (name, slug, description, max_users, is_active,
                               allow_self_registration, settings, created_by)
    VALUES (btrim(p_fields->>'name'),
            p_fields->>'slug',
            p_fields->>'description',
            (p_fields->>'max_users')::integer,
            coalesce((p_fields->>'is_active')::boolean, true),
            coalesce((p_fields->>'allow_self_registration')::boolean, false),
            coalesce(nullif(p_fields->'settings', 'null'::jsonb), '{}'),
            p_actor)
    RETURNING * INTO o;

    PERFORM um_audit(o.id, p_actor, 'organization.create', 'organization',
                     o.id::text, 'success', p_ip, p_ua,
                     um_changed_fields('{}', um_organization_json(o),
                                       p_fields),
                     NULL);

    RETURN um_organization_view(o);
END
$$;

-- PUT /organizations/{id}: the fields sent change; p_tenant (NULL for a
-- super admin acting on every tenant) limits which organization.
CREATE FUNCTION um_organization_update(p_id uuid, p_tenant uuid,
                                       p_actor uuid, p_fields jsonb,
                                       p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old      organizations;
    o        organizations;
    n        bigint;
    changes  jsonb;
BEGIN
    SELECT * INTO old FROM organizations
     WHERE id = p_id AND deleted_at IS NULL
       AND (p_tenant IS NULL OR id = p_tenant)
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'organization not found';
    END IF;

    PERFORM um_organization_check(p_fields);

    -- the bootstrap finds it by slug, and its super admin signs in there
    IF old.slug = 'default'
       AND ((p_fields ? 'slug' AND p_fields->>'slug' <> 'default')
            OR (p_fields->>'is_active')::boolean IS FALSE)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the default organization keeps its slug and stays '
                      'active';
    END IF;

    IF jsonb_typeof(p_fields->'max_users') = 'number' THEN
        n := um_organization_users(p_id);

        IF (p_fields->>'max_users')::bigint < n THEN
            RAISE EXCEPTION USING ERRCODE = 'UMCON',
                MESSAGE = format('the organization has %s users, more than '
                                 'max_users', n);
        END IF;
    END IF;

    UPDATE organizations SET
        name = CASE WHEN p_fields ? 'name'
                    THEN btrim(p_fields->>'name') ELSE name END,
        slug = CASE WHEN p_fields ? 'slug'
                    THEN p_fields->>'slug' ELSE slug END,
        description = CASE WHEN p_fields ? 'description'
                           THEN p_fields->>'description' ELSE description END,
        max_users = CASE WHEN p_fields ? 'max_users'
                         THEN (p_fields->>'max_users')::integer
                         ELSE max_users END,
        is_active = CASE WHEN p_fields ? 'is_active'
                         THEN (p_fields->>'is_active')::boolean
                         ELSE is_active END,
        allow_self_registration =
            CASE WHEN p_fields ? 'allow_self_registration'
                 THEN (p_fields->>'allow_self_registration')::boolean
                 ELSE allow_self_registration END,
        settings = CASE WHEN p_fields ? 'settings'
                        THEN p_fields->'settings' ELSE settings END,
        updated_at = now()
     WHERE id = p_id
    RETURNING * INTO o;

    changes := um_changed_fields(um_organization_json(old),
                                 um_organization_json(o), p_fields);

    PERFORM um_audit(o.id, p_actor, 'organization.update', 'organization',
                     o.id::text, 'success', p_ip, p_ua, changes, NULL);

    RETURN jsonb_build_object('organization', um_organization_view(o),
                              'changes', changes);
END
$$;

-- DELETE /organizations/{id}: soft.  Its users can no longer sign in
-- (login and refresh want a live, active organization) and their sessions
-- end now; the slug is free again.
CREATE FUNCTION um_organization_delete(p_id uuid, p_actor uuid, p_ip text,
                                       p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    o           organizations;
    ended       bigint;
    was_active  boolean;
    changes     jsonb;
BEGIN
    SELECT * INTO o FROM organizations
     WHERE id = p_id AND deleted_at IS NULL FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'organization not found';
    END IF;

    IF o.slug = 'default' THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the default organization cannot be deleted';
    END IF;

    IF EXISTS (SELECT 1 FROM users WHERE id = p_actor
                                     AND organization_id = p_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'an organization cannot be deleted by its own member';
    END IF;

    was_active := o.is_active;

    UPDATE organizations SET deleted_at = now(), is_active = false,
                             updated_at = now()
     WHERE id = p_id
    RETURNING * INTO o;

    changes := jsonb_build_object('deleted_at',
                   jsonb_build_object('old', NULL, 'new', um_ts(o.deleted_at)))
               || CASE WHEN was_active
                       THEN '{"is_active": {"old": true, "new": false}}'::jsonb
                       ELSE '{}' END;

    WITH gone AS (
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin'
         WHERE organization_id = p_id AND revoked_at IS NULL
        RETURNING 1)
    SELECT count(*) INTO ended FROM gone;

    PERFORM um_audit(o.id, p_actor, 'organization.delete', 'organization',
                     o.id::text, 'success', p_ip, p_ua, changes,
                     jsonb_build_object('sessions_ended', ended,
                                        'users', um_organization_users(o.id)));

    RETURN um_organization_json(o);
END
$$;


-- ------------------------------------------------------------------------
-- locations

CREATE TABLE locations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    code            citext NOT NULL
                    CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$'),
    description     text CHECK (char_length(description) <= 1000),
    -- {street, city, state, postal_code, country}, as a user's address
    address         jsonb CHECK (jsonb_typeof(address) = 'object'),
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    timezone        text CHECK (char_length(timezone) <= 64),
    parent_id       uuid REFERENCES locations (id),
    is_active       boolean NOT NULL DEFAULT true,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);

-- a code names one live location of an organization (any letter case)
CREATE UNIQUE INDEX locations_org_code_key
    ON locations (organization_id, code) WHERE deleted_at IS NULL;

-- GET /locations of a tenant, by name
CREATE INDEX locations_org_name_idx
    ON locations (organization_id, name, id) WHERE deleted_at IS NULL;

-- sub-locations, when a location is deleted or moved
CREATE INDEX locations_parent_idx
    ON locations (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE user_locations (
    user_id     uuid NOT NULL REFERENCES users (id),
    location_id uuid NOT NULL REFERENCES locations (id),
    is_primary  boolean NOT NULL DEFAULT false,
    assigned_by uuid REFERENCES users (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, location_id)
);

-- at most one primary location a user
CREATE UNIQUE INDEX user_locations_primary_key
    ON user_locations (user_id) WHERE is_primary;

-- GET /locations/{id}/users, in the order they were assigned
CREATE INDEX user_locations_location_idx
    ON user_locations (location_id, assigned_at, user_id);

CREATE FUNCTION um_location_json(l locations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', l.id,
        'organization_id', l.organization_id,
        'name', l.name,
        'code', l.code,
        'description', l.description,
        'address', l.address,
        'latitude', l.latitude,
        'longitude', l.longitude,
        'timezone', l.timezone,
        'parent_id', l.parent_id,
        'is_active', l.is_active,
        'created_by', l.created_by,
        'created_at', um_ts(l.created_at),
        'updated_at', um_ts(l.updated_at),
        'deleted_at', um_ts(l.deleted_at))
$$;

-- the rules of the fields sent, raised with the field's name; p_org and
-- p_self place parent_id
CREATE FUNCTION um_location_check(p_fields jsonb, p_org uuid, p_self uuid)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    parent  uuid;
    tz      text;
BEGIN
    IF p_fields ? 'name' AND btrim(p_fields->>'name') = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'name',
            MESSAGE = 'name must not be empty';
    END IF;

    IF p_fields ? 'code'
       AND p_fields->>'code' !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$'
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'code',
            MESSAGE = 'code has 1 to 50 letters, digits, ''.'', ''_'' and '
                      '''-'', starting with a letter or digit';
    END IF;

    -- an IANA "Area/Location" (or UTC) that PostgreSQL knows.  The shape
    -- keeps out abbreviations and POSIX rules ("Mars/Base+3"), which it
    -- takes as well; pg_timezone_names would tell, at some 20 ms a look.
    tz := p_fields->>'timezone';

    IF tz IS NOT NULL THEN
        BEGIN
            IF tz <> 'UTC'
               AND tz !~ '^([A-Za-z][A-Za-z_-]*/)+[A-Za-z][A-Za-z_-]*$'
               AND tz !~ '^Etc/GMT[+-]([0-9]|1[0-4])$'
            THEN
                RAISE invalid_parameter_value;
            END IF;

            PERFORM now() AT TIME ZONE tz;

        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'timezone',
                MESSAGE = 'timezone must be an IANA time zone such as '
                          'Europe/Paris';
        END;
    END IF;

    parent := (p_fields->>'parent_id')::uuid;

    IF parent IS NULL THEN
        RETURN;
    END IF;

    -- locked, so that a delete of the parent waits or is waited for
    PERFORM 1 FROM locations
      WHERE id = parent AND organization_id = p_org AND deleted_at IS NULL
        FOR SHARE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'parent_id',
            MESSAGE = 'parent_id is not a location of the organization';
    END IF;

    -- a location cannot sit below itself
    IF p_self IS NOT NULL AND EXISTS (
        WITH RECURSIVE up (id, depth) AS (
            SELECT parent, 0
            UNION ALL
            SELECT l.parent_id, up.depth + 1
              FROM up JOIN locations l ON l.id = up.id
             WHERE l.parent_id IS NOT NULL AND up.depth < 100)
        SELECT 1 FROM up WHERE id = p_self)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'parent_id',
            MESSAGE = 'parent_id would put the location below itself';
    END IF;
END
$$;

-- the merged address: keys sent replace, keys sent as null go
CREATE FUNCTION um_address_merge(p_old jsonb, p_new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_new IS NULL OR jsonb_typeof(p_new) = 'null'
                THEN NULL
                ELSE nullif(jsonb_strip_nulls(coalesce(p_old, '{}')
                                              || p_new), '{}')
           END
$$;

-- POST /locations, in organization p_org
CREATE FUNCTION um_location_create(p_org uuid, p_actor uuid, p_fields jsonb,
                                   p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    l  locations;
BEGIN
    IF NOT um_organization_live(p_org) THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'organization not found';
    END IF;

    PERFORM um_location_check(p_fields, p_org, NULL);

    INSERT INTO locations (organization_id, name, code, description, address,
                           latitude, longitude, timezone, parent_id,
                           is_active, created_by)
    VALUES (p_org,
            btrim(p_fields->>'name'),
            p_fields->>'code',
            p_fields->>'description',
            um_address_merge(NULL, p_fields->'address'),
            (p_fields->>'latitude')::double precision,
            (p_fields->>'longitude')::double precision,
            p_fields->>'timezone',
            (p_fields->>'parent_id')::uuid,
            coalesce((p_fields->>'is_active')::boolean, true),
            p_actor)
    RETURNING * INTO l;

    PERFORM um_audit(p_org, p_actor, 'location.create', 'location',
                     l.id::text, 'success', p_ip, p_ua,
                     um_changed_fields('{}', um_location_json(l),
                                       p_fields - 'organization_id'),
                     NULL);

    RETURN um_location_json(l) || '{"user_count": 0}';
END
$$;

-- PUT /locations/{id}
CREATE FUNCTION um_location_update(p_id uuid, p_tenant uuid, p_actor uuid,
                                   p_fields jsonb, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old      locations;
    l        locations;
    changes  jsonb;
BEGIN
    SELECT * INTO old FROM locations
     WHERE id = p_id AND deleted_at IS NULL
       AND (p_tenant IS NULL OR organization_id = p_tenant)
       AND um_organization_live(organization_id)
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'location not found';
    END IF;

    PERFORM um_location_check(p_fields, old.organization_id, old.id);

    UPDATE locations SET
        name = CASE WHEN p_fields ? 'name'
                    THEN btrim(p_fields->>'name') ELSE name END,
        code = CASE WHEN p_fields ? 'code'
                    THEN p_fields->>'code' ELSE code END,
        description = CASE WHEN p_fields ? 'description'
                           THEN p_fields->>'description' ELSE description END,
        address = CASE WHEN p_fields ? 'address'
                       THEN um_address_merge(address, p_fields->'address')
                       ELSE address END,
        latitude = CASE WHEN p_fields ? 'latitude'
                        THEN (p_fields->>'latitude')::double precision
                        ELSE latitude END,
        longitude = CASE WHEN p_fields ? 'longitude'
                         THEN (p_fields->>'longitude')::double precision
                         ELSE longitude END,
        timezone = CASE WHEN p_fields ? 'timezone'
                        THEN p_fields->>'timezone' ELSE timezone END,
        parent_id = CASE WHEN p_fields ? 'parent_id'
                         THEN (p_fields->>'parent_id')::uuid
                         ELSE parent_id END,
        is_active = CASE WHEN p_fields ? 'is_active'
                         THEN (p_fields->>'is_active')::boolean
                         ELSE is_active END,
        updated_at = now()
     WHERE id = p_id
    RETURNING * INTO l;

    changes := um_changed_fields(um_location_json(old), um_location_json(l),
                                 p_fields);

    PERFORM um_audit(l.organization_id, p_actor, 'location.update',
                     'location', l.id::text, 'success', p_ip, p_ua, changes,
                     NULL);

    RETURN jsonb_build_object('location', um_location_json(l)
                                          || jsonb_build_object(
                                                 'user_count',
                                                 um_location_users(l.id)),
                              'changes', changes);
END
$$;

-- the live users assigned to a location
CREATE FUNCTION um_location_users(p_location uuid) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM user_locations ul JOIN users u ON u.id = ul.user_id
     WHERE ul.location_id = p_location AND u.deleted_at IS NULL
$$;

-- A user who has locations has one primary: when it goes, the one
-- assigned first of the rest takes its place.
CREATE FUNCTION um_location_promote(p_user uuid) RETURNS uuid
LANGUAGE sql AS $$
    UPDATE user_locations SET is_primary = true
     WHERE user_id = p_user
       AND location_id = (SELECT location_id FROM user_locations
                           WHERE user_id = p_user
                           ORDER BY assigned_at, location_id LIMIT 1)
       AND NOT EXISTS (SELECT 1 FROM user_locations
                        WHERE user_id = p_user AND is_primary)
    RETURNING location_id
$$;

-- DELETE /locations/{id}: soft; its assignments end.
CREATE FUNCTION um_location_delete(p_id uuid, p_tenant uuid, p_actor uuid,
                                   p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    l           locations;
    n           bigint;
    lost        uuid[];
    was_active  boolean;
BEGIN
    SELECT * INTO l FROM locations
     WHERE id = p_id AND deleted_at IS NULL
       AND (p_tenant IS NULL OR organization_id = p_tenant)
       AND um_organization_live(organization_id)
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'location not found';
    END IF;

    IF EXISTS (SELECT 1 FROM locations
                WHERE parent_id = p_id AND deleted_at IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the location has sub-locations: move or delete '
                      'them first';
    END IF;

    was_active := l.is_active;

    WITH gone AS (
        DELETE FROM user_locations WHERE location_id = p_id
        RETURNING user_id, is_primary)
    SELECT count(*), array_agg(user_id) FILTER (WHERE is_primary)
      INTO n, lost FROM gone;

    -- a statement apart: the promotion must see the rows gone
    PERFORM um_location_promote(x) FROM unnest(lost) AS x;

    UPDATE locations SET deleted_at = now(), is_active = false,
                         updated_at = now()
     WHERE id = p_id
    RETURNING * INTO l;

    PERFORM um_audit(l.organization_id, p_actor, 'location.delete',
                     'location', l.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object('deleted_at',
                         jsonb_build_object('old', NULL,
                                            'new', um_ts(l.deleted_at)))
                     || CASE WHEN was_active
                             THEN '{"is_active": {"old": true,
                                                   "new": false}}'::jsonb
                             ELSE '{}' END,
                     jsonb_build_object('assignments_ended', n,
                                        'primaries_moved',
                                        coalesce(cardinality(lost), 0)));

    RETURN um_location_json(l);
END
$$;

-- a user's locations: {user_id, primary_location_id, locations}
CREATE FUNCTION um_user_locations_json(p_user uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'user_id', p_user,
        'primary_location_id',
            (SELECT location_id FROM user_locations
              WHERE user_id = p_user AND is_primary),
        'locations',
            coalesce(jsonb_agg(um_location_json(l)
                               || jsonb_build_object(
                                      'is_primary', ul.is_primary,
                                      'assigned_by', ul.assigned_by,
                                      'assigned_at', um_ts(ul.assigned_at))
                               ORDER BY ul.is_primary DESC, l.name, l.id)
                     FILTER (WHERE l.id IS NOT NULL),
                     '[]'))
      FROM user_locations ul JOIN locations l ON l.id = ul.location_id
     WHERE ul.user_id = p_user AND l.deleted_at IS NULL
$$;

-- the user an assignment is about, locked so that concurrent assignments
-- of one user take turns: NOT FOUND when not in p_tenant
CREATE FUNCTION um_location_user(p_user uuid, p_tenant uuid) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    u  users;
BEGIN
    SELECT * INTO u FROM users
     WHERE id = p_user AND deleted_at IS NULL
       AND (p_tenant IS NULL OR organization_id = p_tenant)
       AND um_organization_live(organization_id)
       FOR NO KEY UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    RETURN u;
END
$$;

-- POST /locations/assign {user_id, location_ids, primary_location_id}:
-- adds the locations to the user's (those already assigned stay as they
-- are); primary_location_id, one of location_ids, becomes the primary.
CREATE FUNCTION um_location_assign(p_tenant uuid, p_actor uuid,
                                   p_fields jsonb, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u         users;
    wanted    uuid[];
    found     bigint;
    inactive  bigint;
    added     jsonb;
    primary_  uuid;
    before    uuid;
    after     uuid;
BEGIN
    u := um_location_user((p_fields->>'user_id')::uuid, p_tenant);

    wanted := ARRAY(SELECT DISTINCT x::uuid
                      FROM jsonb_array_elements_text(p_fields->'location_ids')
                           AS x);
    primary_ := (p_fields->>'primary_location_id')::uuid;

    -- Another tenant's location is one that does not exist.  The rows are
    -- locked so that a location being deleted is not assigned meanwhile.
    SELECT count(*), count(*) FILTER (WHERE NOT x.is_active)
      INTO found, inactive
      FROM (SELECT l.is_active FROM locations l
             WHERE l.id = ANY (wanted)
               AND l.organization_id = u.organization_id
               AND l.deleted_at IS NULL
               FOR SHARE) x;

    IF found < cardinality(wanted) THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'location not found';
    END IF;

    IF inactive > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'location_ids',
            MESSAGE = 'an inactive location cannot be assigned';
    END IF;

    IF primary_ IS NOT NULL AND primary_ <> ALL (wanted) THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            DETAIL = 'primary_location_id',
            MESSAGE = 'primary_location_id must be one of location_ids';
    END IF;

    SELECT location_id INTO before FROM user_locations
     WHERE user_id = u.id AND is_primary;

    WITH ins AS (
        INSERT INTO user_locations (user_id, location_id, assigned_by)
        SELECT u.id, w, p_actor FROM unnest(wanted) AS w
        ON CONFLICT DO NOTHING
        RETURNING location_id)
    SELECT coalesce(jsonb_agg(location_id ORDER BY location_id), '[]')
      INTO added FROM ins;

    IF primary_ IS NOT NULL AND primary_ IS DISTINCT FROM before THEN
        -- two statements: the unique index is checked row by row
        UPDATE user_locations SET is_primary = false
         WHERE user_id = u.id AND is_primary;
        UPDATE user_locations SET is_primary = true
         WHERE user_id = u.id AND location_id = primary_;

    ELSIF before IS NULL THEN
        -- a user with locations has a primary one: the first named
        UPDATE user_locations SET is_primary = true
         WHERE user_id = u.id
           AND location_id = (SELECT (p_fields->'location_ids'->>0)::uuid);
    END IF;

    SELECT location_id INTO after FROM user_locations
     WHERE user_id = u.id AND is_primary;

    PERFORM um_audit(u.organization_id, p_actor, 'location.assign', 'user',
                     u.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object('location_ids',
                                        jsonb_build_object('added', added))
                     || CASE WHEN before IS DISTINCT FROM after
                             THEN jsonb_build_object('primary_location_id',
                                      jsonb_build_object('old', before,
                                                         'new', after))
                             ELSE '{}' END,
                     NULL);

    RETURN um_user_locations_json(u.id);
END
$$;

-- DELETE /locations/user/{user_id}/location/{location_id}
CREATE FUNCTION um_location_unassign(p_tenant uuid, p_actor uuid,
                                     p_user uuid, p_location uuid,
                                     p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u         users;
    primary_  boolean;
    promoted  uuid;
BEGIN
    u := um_location_user(p_user, p_tenant);

    DELETE FROM user_locations ul
     USING locations l
     WHERE ul.user_id = u.id AND ul.location_id = p_location
       AND l.id = ul.location_id AND l.deleted_at IS NULL
    RETURNING ul.is_primary INTO primary_;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'the user is not assigned to this location';
    END IF;

    IF primary_ THEN
        promoted := um_location_promote(u.id);
    END IF;

    PERFORM um_audit(u.organization_id, p_actor, 'location.unassign', 'user',
                     u.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object('location_ids',
                                        jsonb_build_object('removed',
                                            jsonb_build_array(p_location)))
                     || CASE WHEN primary_
                             THEN jsonb_build_object('primary_location_id',
                                      jsonb_build_object('old', p_location,
                                                         'new', promoted))
                             ELSE '{}' END,
                     NULL);

    RETURN um_user_locations_json(u.id);
END
$$;
