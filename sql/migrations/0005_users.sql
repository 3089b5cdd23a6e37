-- Users: the administration of an organization's accounts (issue 4).
--
-- Each mutating endpoint of src/api/um_users.c calls one function below,
-- which makes the change and writes its audit row in one transaction.  The
-- caller travels as one jsonb object the module builds from the verified
-- access token (never from the request body):
--
--   {"id": the caller,
--    "org": the caller's organization (or the one a super admin chose
--           with X-Tenant-ID): where new users go by default,
--    "tenant": the organization the caller may see, null for a super
--              admin who did not choose one (then every organization),
--    "super_admin": bool, "org_admin": bool,
--    "permissions": the token's effective permissions}
--
-- Another tenant's user is "not found" (UMNOF), like one that does not
-- exist.  The indexes at the end are named for the queries that need them;
-- they keep listing and search fast at a million users.

CREATE EXTENSION IF NOT EXISTS btree_gin;


-- Whether the caller holds a permission: a super admin holds every one, an
-- organization admin every one but the "system:" ones, as
-- um_has_permission() decides in C.
CREATE FUNCTION um_caller_can(p_caller jsonb, p_perm text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((p_caller->>'super_admin')::boolean, false)
        OR (coalesce((p_caller->>'org_admin')::boolean, false)
            AND split_part(p_perm, ':', 1) <> 'system')
        OR coalesce(p_caller->'permissions', '[]'::jsonb)
           ?| ARRAY[p_perm, split_part(p_perm, ':', 1) || ':*', '*']
$$;


-- An organization admin by user_type or by an assigned org_admin role.
CREATE FUNCTION um_user_is_org_admin(u users) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT u.user_type = 'admin'
        OR EXISTS (SELECT 1 FROM user_roles ur JOIN roles r
                     ON r.id = ur.role_id
                    WHERE ur.user_id = u.id AND r.is_builtin
                      AND r.name = 'org_admin' AND r.deleted_at IS NULL)
$$;


-- The user p_target as the caller may change them, locked.  A super admin
-- is changed only by a super admin, an organization admin only by an
-- organization admin; anyone may be changed by themselves (within what the
-- endpoint allows).
CREATE FUNCTION um_user_for_change(p_caller jsonb, p_target uuid,
                                   p_deleted boolean)
RETURNS users LANGUAGE plpgsql AS $$
DECLARE
    u  users;
BEGIN
    SELECT * INTO u FROM users
     WHERE id = p_target
       AND (p_caller->>'tenant' IS NULL
            OR organization_id = (p_caller->>'tenant')::uuid)
       AND (deleted_at IS NULL OR p_deleted)
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    IF u.id = (p_caller->>'id')::uuid THEN
        RETURN u;
    END IF;

    IF u.is_super_admin
       AND NOT coalesce((p_caller->>'super_admin')::boolean, false)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'only a super admin may change a super admin';
    END IF;

    IF NOT coalesce((p_caller->>'org_admin')::boolean, false)
       AND NOT coalesce((p_caller->>'super_admin')::boolean, false)
       AND um_user_is_org_admin(u)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'only an organization admin may change an '
                      'organization admin';
    END IF;

    RETURN u;
END
$$;


-- user_type stands for a built-in role: making (or unmaking) a manager
-- takes roles:assign, an admin the org_admin role.
CREATE FUNCTION um_check_user_type(p_caller jsonb, p_old text, p_new text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_old IS NOT DISTINCT FROM p_new THEN
        RETURN;
    END IF;

    IF (p_old = 'admin' OR p_new = 'admin')
       AND NOT coalesce((p_caller->>'org_admin')::boolean, false)
       AND NOT coalesce((p_caller->>'super_admin')::boolean, false)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'only an organization admin may make or unmake an '
                      'admin';
    END IF;

    IF NOT um_caller_can(p_caller, 'roles:assign') THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'changing user_type needs the permission '
                      'roles:assign';
    END IF;
END
$$;


-- What changed between two versions of a user, as {field: {old, new}}.
CREATE FUNCTION um_user_changes(p_old users, p_new users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(k.key,
                        jsonb_build_object(
                            'old', coalesce(o.value, 'null'::jsonb),
                            'new', coalesce(n.value, 'null'::jsonb))),
                    '{}')
      FROM jsonb_each(um_user_json(p_new, true)) n
      FULL JOIN jsonb_each(um_user_json(p_old, true)) o ON o.key = n.key
     CROSS JOIN LATERAL (SELECT coalesce(n.key, o.key) AS key) k
     WHERE o.value IS DISTINCT FROM n.value
       AND k.key NOT IN ('updated_at', 'tenant_id')
$$;


-- Ends every live session of a user; returns their ids, whose access
-- tokens the module puts on the deny-list.
CREATE FUNCTION um_end_user_sessions(p_user uuid, p_reason text)
RETURNS uuid[] LANGUAGE sql AS $$
    WITH gone AS (
        UPDATE sessions SET revoked_at = now(), revoked_reason = p_reason
         WHERE user_id = p_user AND revoked_at IS NULL
        RETURNING id)
    SELECT coalesce(array_agg(id), '{}') FROM gone
$$;


-- An organization's room for one more user (locks the organization, so
-- parallel creations cannot pass the limit together).
CREATE FUNCTION um_check_max_users(p_org uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o  organizations;
BEGIN
    SELECT * INTO o FROM organizations
     WHERE id = p_org AND deleted_at IS NULL FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'no such organization', DETAIL = 'organization_id';
    END IF;

    IF o.max_users IS NOT NULL AND
       (SELECT count(*) FROM users
         WHERE organization_id = o.id AND deleted_at IS NULL) >= o.max_users
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the organization has reached its user limit';
    END IF;
END
$$;


-- POST /users.  p_fields is the checked body without the password; p_hash
-- its argon2id hash, or NULL: such an account cannot sign in until its
-- password is reset.
CREATE FUNCTION um_create_user(p_caller jsonb, p_fields jsonb, p_hash text,
                               p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    org  uuid;
    u    users;
BEGIN
    org := coalesce((p_fields->>'organization_id')::uuid,
                    (p_caller->>'org')::uuid);

    IF org <> (p_caller->>'org')::uuid
       AND NOT coalesce((p_caller->>'super_admin')::boolean, false)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'organization_id must be your own organization';
    END IF;

    IF p_fields ? 'kyc_status' AND NOT um_caller_can(p_caller, 'users:update')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'kyc_status may only be set by an administrator '
                      '(users:update)';
    END IF;

    PERFORM um_check_user_type(p_caller, 'user',
                               coalesce(p_fields->>'user_type', 'user'));
    PERFORM um_check_max_users(org);

    INSERT INTO users (organization_id, email, username, password_hash,
                       first_name, last_name, phone, avatar_url, department,
                       user_type, date_of_birth, address, kyc_status,
                       is_active, preferences, created_by,
                       password_changed_at)
    VALUES (org, p_fields->>'email', p_fields->>'username', p_hash,
            p_fields->>'first_name', p_fields->>'last_name',
            p_fields->>'phone', p_fields->>'avatar_url',
            p_fields->>'department',
            coalesce(p_fields->>'user_type', 'user'),
            (p_fields->>'date_of_birth')::date,
            nullif(p_fields->'address', 'null'::jsonb),
            p_fields->>'kyc_status',
            coalesce((p_fields->>'is_active')::boolean, true),
            coalesce(nullif(p_fields->'preferences', 'null'::jsonb), '{}'),
            (p_caller->>'id')::uuid,
            CASE WHEN p_hash IS NOT NULL THEN now() END)
    RETURNING * INTO u;

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     'user.create', 'user', u.id::text, 'success', p_ip, p_ua,
                     um_user_json(u, true) - 'tenant_id',
                     jsonb_build_object('password_set', p_hash IS NOT NULL));

    RETURN um_user_json(u, true);
END
$$;


-- PUT /users/{id}: a partial update; p_fields holds only the fields sent.
-- Oneself: the profile fields of PUT /users/me; with users:update also
-- email, kyc_status, is_active, user_type and the verification flags.
-- Deactivating ends the user's sessions.
CREATE FUNCTION um_update_user(p_caller jsonb, p_target uuid, p_fields jsonb,
                               p_ip text, p_ua text,
                               OUT answer jsonb, OUT sessions jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    old      users;
    u        users;
    self     boolean;
    admin    boolean;
    field    text;
    ended    uuid[] := '{}';
    changes  jsonb;
BEGIN
    old := um_user_for_change(p_caller, p_target, false);
    self := old.id = (p_caller->>'id')::uuid;
    admin := um_caller_can(p_caller, 'users:update');

    IF NOT admin THEN
        IF NOT self THEN
            RAISE EXCEPTION USING ERRCODE = 'UMFBD',
                MESSAGE = 'insufficient permissions';
        END IF;

        SELECT k INTO field
          FROM jsonb_object_keys(p_fields) k
         WHERE k IN ('email', 'kyc_status', 'is_active', 'user_type',
                     'is_verified', 'email_verified', 'phone_verified')
         LIMIT 1;

        IF field IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'UMFBD',
                MESSAGE = field || ' may only be changed by an administrator';
        END IF;
    END IF;

    IF p_fields ? 'user_type' THEN
        PERFORM um_check_user_type(p_caller, old.user_type,
                                   p_fields->>'user_type');
    END IF;

    IF self AND p_fields ? 'is_active'
       AND NOT (p_fields->>'is_active')::boolean
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'you cannot deactivate your own account';
    END IF;

    UPDATE users SET
        email = coalesce(p_fields->>'email', email),
        email_verified = CASE
            WHEN p_fields ? 'email_verified'
                THEN (p_fields->>'email_verified')::boolean
            WHEN p_fields ? 'is_verified'
                THEN (p_fields->>'is_verified')::boolean
            WHEN p_fields ? 'email'
                 AND (p_fields->>'email')::citext IS DISTINCT FROM email
                THEN false
            ELSE email_verified END,
        username = CASE WHEN p_fields ? 'username'
                        THEN p_fields->>'username' ELSE username END,
        first_name = CASE WHEN p_fields ? 'first_name'
                          THEN p_fields->>'first_name' ELSE first_name END,
        last_name = CASE WHEN p_fields ? 'last_name'
                         THEN p_fields->>'last_name' ELSE last_name END,
        phone = CASE WHEN p_fields ? 'phone'
                     THEN p_fields->>'phone' ELSE phone END,
        phone_verified = CASE
            WHEN p_fields ? 'phone_verified'
                THEN (p_fields->>'phone_verified')::boolean
            WHEN p_fields ? 'phone'
                 AND p_fields->>'phone' IS DISTINCT FROM phone
                THEN false
            ELSE phone_verified END,
        avatar_url = CASE WHEN p_fields ? 'avatar_url'
                          THEN p_fields->>'avatar_url' ELSE avatar_url END,
        department = CASE WHEN p_fields ? 'department'
                          THEN p_fields->>'department' ELSE department END,
        date_of_birth = CASE WHEN p_fields ? 'date_of_birth'
                             THEN (p_fields->>'date_of_birth')::date
                             ELSE date_of_birth END,
        address = CASE WHEN p_fields ? 'address'
                       THEN nullif(p_fields->'address', 'null'::jsonb)
                       ELSE address END,
        preferences = CASE WHEN p_fields ? 'preferences'
                           THEN p_fields->'preferences' ELSE preferences END,
        kyc_status = CASE WHEN p_fields ? 'kyc_status'
                          THEN p_fields->>'kyc_status' ELSE kyc_status END,
        is_active = coalesce((p_fields->>'is_active')::boolean, is_active),
        user_type = coalesce(p_fields->>'user_type', user_type),
        updated_at = now()
     WHERE id = old.id
    RETURNING * INTO u;

    IF old.is_active AND NOT u.is_active THEN
        ended := um_end_user_sessions(u.id, 'user_disabled');
    END IF;

    changes := um_user_changes(old, u);

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     'user.update', 'user', u.id::text, 'success', p_ip, p_ua,
                     changes,
                     CASE WHEN cardinality(ended) > 0
                          THEN jsonb_build_object('sessions_ended',
                                                  cardinality(ended)) END);

    answer := jsonb_build_object('user',
                                 um_user_json(u, um_caller_can(p_caller,
                                                               'users:read')),
                                 'changes', changes);
    sessions := to_jsonb(ended);
END
$$;


-- DELETE /users/{id}: a soft delete.  The account can no longer sign in,
-- its sessions end, and its email and username are free for a new account
-- (the unique indexes skip deleted users).
CREATE FUNCTION um_delete_user(p_caller jsonb, p_target uuid, p_ip text,
                               p_ua text,
                               OUT answer jsonb, OUT sessions jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    old    users;
    u      users;
    ended  uuid[];
BEGIN
    old := um_user_for_change(p_caller, p_target, false);

    IF old.id = (p_caller->>'id')::uuid THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'you cannot delete your own account';
    END IF;

    UPDATE users SET is_active = false, deleted_at = now(),
                     updated_at = now()
     WHERE id = old.id
    RETURNING * INTO u;

    ended := um_end_user_sessions(u.id, 'admin');

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     'user.delete', 'user', u.id::text, 'success', p_ip, p_ua,
                     um_user_changes(old, u),
                     jsonb_build_object('sessions_ended', cardinality(ended)));

    answer := jsonb_build_object('message', 'user deleted',
                                 'user_id', u.id,
                                 'deleted_at', um_ts(u.deleted_at),
                                 'sessions_ended', cardinality(ended));
    sessions := to_jsonb(ended);
END
$$;


-- POST /users/{id}/reactivate: undoes a soft delete or a deactivation.  A
-- deleted user whose email or username was taken since stays deleted
-- (the unique index answers 409).
CREATE FUNCTION um_reactivate_user(p_caller jsonb, p_target uuid, p_ip text,
                                   p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old  users;
    u    users;
BEGIN
    old := um_user_for_change(p_caller, p_target, true);

    IF old.is_active AND old.deleted_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the user is already active';
    END IF;

    IF old.deleted_at IS NOT NULL THEN
        PERFORM um_check_max_users(old.organization_id);
    END IF;

    UPDATE users SET is_active = true, deleted_at = NULL, updated_at = now()
     WHERE id = old.id
    RETURNING * INTO u;

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     'user.reactivate', 'user', u.id::text, 'success', p_ip,
                     p_ua, um_user_changes(old, u), NULL);

    RETURN jsonb_build_object('message', 'user reactivated',
                              'user_id', u.id,
                              'user', um_user_json(u, true));
END
$$;


-- PUT /users/{id}/status: deactivating ends the user's sessions.
CREATE FUNCTION um_set_user_status(p_caller jsonb, p_target uuid,
                                   p_active boolean, p_ip text, p_ua text,
                                   OUT answer jsonb, OUT sessions jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    old    users;
    u      users;
    ended  uuid[] := '{}';
BEGIN
    old := um_user_for_change(p_caller, p_target, false);

    IF NOT p_active AND old.id = (p_caller->>'id')::uuid THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'you cannot deactivate your own account';
    END IF;

    UPDATE users SET is_active = p_active, updated_at = now()
     WHERE id = old.id
    RETURNING * INTO u;

    IF NOT p_active THEN
        ended := um_end_user_sessions(u.id, 'user_disabled');
    END IF;

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     'user.status', 'user', u.id::text, 'success', p_ip, p_ua,
                     um_user_changes(old, u),
                     jsonb_build_object('sessions_ended', cardinality(ended)));

    answer := jsonb_build_object('message', 'user status updated',
                                 'user_id', u.id,
                                 'is_active', u.is_active,
                                 'status', CASE WHEN u.is_active
                                                THEN 'active'
                                                ELSE 'inactive' END,
                                 'sessions_ended', cardinality(ended));
    sessions := to_jsonb(ended);
END
$$;


-- GET /users/{id}/permissions (seed 001): the permissions granted to the
-- user directly, each with its validity, and the effective ones (roles
-- included) that the next access token will carry.
CREATE FUNCTION um_user_permissions_json(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'username', u.username,
        'email', u.email,
        'permissions', coalesce(jsonb_agg(p.name ORDER BY p.name), '[]'),
        'permissionDetails', coalesce(jsonb_agg(jsonb_build_object(
            'id', p.id,
            'name', p.name,
            'description', p.description,
            'valid', up.valid_from <= now()
                     AND (up.valid_until IS NULL OR up.valid_until > now()),
            'valid_from', um_ts(up.valid_from),
            'valid_until', um_ts(up.valid_until),
            'granted_by', up.granted_by,
            'granted_at', um_ts(up.granted_at)) ORDER BY p.name), '[]'),
        'effective_permissions', um_token_claims(u)->'permissions')
      FROM user_permissions up JOIN permissions p ON p.id = up.permission_id
     WHERE up.user_id = u.id
$$;


-- The permissions p_list names, by name or by id; an unknown one is
-- refused, named.
CREATE FUNCTION um_resolve_permissions(p_list jsonb) RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ids      uuid[];
    unknown  text;
BEGIN
    SELECT array_agg(DISTINCT p.id) FILTER (WHERE p.id IS NOT NULL),
           string_agg(x.v, ', ' ORDER BY x.n) FILTER (WHERE p.id IS NULL)
      INTO ids, unknown
      FROM jsonb_array_elements_text(p_list) WITH ORDINALITY x(v, n)
      LEFT JOIN permissions p
        ON CASE WHEN x.v ~* ('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}'
                             '-[0-9a-f]{4}-[0-9a-f]{12}$')
                THEN p.id = x.v::uuid
                ELSE p.name = x.v::citext END;

    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'unknown permission: ' || unknown,
            DETAIL = 'permissions';
    END IF;

    RETURN coalesce(ids, '{}');
END
$$;


-- An RFC 3339 time in the future, for valid_until.
CREATE FUNCTION um_valid_until(p_text text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t  timestamptz;
BEGIN
    IF p_text IS NULL THEN
        RETURN NULL;
    END IF;

    IF p_text !~ ('^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,6})?'
                  '([Zz]|[+-]\d\d:\d\d)$')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'valid_until must be an RFC 3339 time',
            DETAIL = 'valid_until';
    END IF;

    BEGIN
        t := p_text::timestamptz;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'valid_until is not a valid time',
            DETAIL = 'valid_until';
    END;

    IF t <= now() THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'valid_until must be in the future',
            DETAIL = 'valid_until';
    END IF;

    RETURN t;
END
$$;


-- PUT (p_replace) and POST /users/{id}/permissions.  A caller grants and
-- takes away only permissions they hold themselves.
CREATE FUNCTION um_set_user_permissions(p_caller jsonb, p_target uuid,
                                        p_list jsonb, p_valid_until text,
                                        p_replace boolean, p_ip text,
                                        p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u        users;
    ids      uuid[];
    until    timestamptz;
    refused  text;
    added    jsonb;
    removed  jsonb;
BEGIN
    u := um_user_for_change(p_caller, p_target, false);
    ids := um_resolve_permissions(p_list);
    until := um_valid_until(p_valid_until);

    -- what changes: a grant that is new or of another validity, and (when
    -- replacing) a permission taken away
    SELECT string_agg(p.name::text, ', ' ORDER BY p.name)
      INTO refused
      FROM permissions p
      LEFT JOIN user_permissions up
        ON up.user_id = u.id AND up.permission_id = p.id
     WHERE NOT um_caller_can(p_caller, p.name::text)
       AND CASE WHEN p.id = ANY (ids)
                THEN up.user_id IS NULL
                     OR up.valid_until IS DISTINCT FROM until
                ELSE p_replace AND up.user_id IS NOT NULL END;

    IF refused IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'you may only grant or take away permissions you hold: '
                      || refused;
    END IF;

    IF p_replace THEN
        WITH gone AS (
            DELETE FROM user_permissions
             WHERE user_id = u.id AND permission_id <> ALL (ids)
            RETURNING permission_id)
        SELECT coalesce(jsonb_agg(p.name ORDER BY p.name), '[]')
          INTO removed
          FROM gone JOIN permissions p ON p.id = gone.permission_id;
    END IF;

    WITH granted AS (
        INSERT INTO user_permissions (user_id, permission_id, granted_by,
                                      valid_until)
        SELECT u.id, id, (p_caller->>'id')::uuid, until
          FROM unnest(ids) id
        ON CONFLICT (user_id, permission_id) DO UPDATE
           SET valid_until = EXCLUDED.valid_until,
               granted_by = EXCLUDED.granted_by,
               granted_at = now()
         WHERE user_permissions.valid_until
               IS DISTINCT FROM EXCLUDED.valid_until
        RETURNING permission_id)
    SELECT coalesce(jsonb_agg(p.name ORDER BY p.name), '[]')
      INTO added
      FROM granted JOIN permissions p ON p.id = granted.permission_id;

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     CASE WHEN p_replace THEN 'user.permissions_replace'
                          ELSE 'user.permissions_add' END,
                     'user', u.id::text, 'success', p_ip, p_ua,
                     jsonb_strip_nulls(jsonb_build_object(
                         'granted', added, 'removed', removed,
                         'valid_until', um_ts(until))),
                     NULL);

    RETURN um_user_permissions_json(u)
           || CASE WHEN p_replace THEN '{}'::jsonb
                   ELSE jsonb_build_object(
                            'addedPermissions',
                            (SELECT coalesce(jsonb_agg(p.name
                                                       ORDER BY p.name), '[]')
                               FROM permissions p WHERE p.id = ANY (ids)))
              END;
END
$$;


-- The roles assigned to a user, and the built-in one their user_type
-- stands for.
CREATE FUNCTION um_user_roles_json(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'builtin_role', um_builtin_role(u.user_type),
        'roles', coalesce(jsonb_agg(jsonb_build_object(
                     'id', r.id,
                     'name', r.name,
                     'description', r.description,
                     'is_builtin', r.is_builtin,
                     'is_active', r.is_active,
                     'assigned_by', ur.assigned_by,
                     'assigned_at', um_ts(ur.assigned_at))
                     ORDER BY r.name), '[]'))
      FROM user_roles ur JOIN roles r ON r.id = ur.role_id
     WHERE ur.user_id = u.id AND r.deleted_at IS NULL
$$;


-- POST (p_assign) and DELETE /users/{id}/roles.  The roles must be of the
-- user's organization.  A caller hands out or takes away only roles whose
-- permissions they hold, and org_admin only as an organization admin.
CREATE FUNCTION um_set_user_roles(p_caller jsonb, p_target uuid,
                                  p_role_ids jsonb, p_assign boolean,
                                  p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u        users;
    ids      uuid[];
    bad      text;
    refused  text;
    touched  jsonb;
BEGIN
    u := um_user_for_change(p_caller, p_target, false);

    SELECT array_agg(DISTINCT x.v::uuid) INTO ids
      FROM jsonb_array_elements_text(p_role_ids) x(v);

    SELECT string_agg(x::text, ', ' ORDER BY x::text) INTO bad
      FROM unnest(ids) x
     WHERE NOT EXISTS (SELECT 1 FROM roles r
                        WHERE r.id = x AND r.deleted_at IS NULL
                          AND r.organization_id = u.organization_id);

    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'not a role of the user''s organization: ' || bad,
            DETAIL = 'role_ids';
    END IF;

    SELECT string_agg(r.name::text, ', ' ORDER BY r.name) INTO refused
      FROM roles r
     WHERE r.id = ANY (ids)
       AND ((r.is_builtin AND r.name = 'org_admin'
             AND NOT coalesce((p_caller->>'org_admin')::boolean, false)
             AND NOT coalesce((p_caller->>'super_admin')::boolean, false))
            OR EXISTS (SELECT 1 FROM role_permissions rp
                         JOIN permissions p ON p.id = rp.permission_id
                        WHERE rp.role_id = r.id
                          AND NOT um_caller_can(p_caller, p.name::text)));

    IF refused IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'you may only hand out roles whose permissions you '
                      'hold: ' || refused;
    END IF;

    IF p_assign THEN
        WITH done AS (
            INSERT INTO user_roles (user_id, role_id, assigned_by)
            SELECT u.id, id, (p_caller->>'id')::uuid FROM unnest(ids) id
            ON CONFLICT DO NOTHING
            RETURNING role_id)
        SELECT coalesce(jsonb_agg(r.name ORDER BY r.name), '[]')
          INTO touched
          FROM done JOIN roles r ON r.id = done.role_id;
    ELSE
        WITH done AS (
            DELETE FROM user_roles
             WHERE user_id = u.id AND role_id = ANY (ids)
            RETURNING role_id)
        SELECT coalesce(jsonb_agg(r.name ORDER BY r.name), '[]')
          INTO touched
          FROM done JOIN roles r ON r.id = done.role_id;
    END IF;

    PERFORM um_audit(u.organization_id, (p_caller->>'id')::uuid,
                     CASE WHEN p_assign THEN 'user.roles_assign'
                          ELSE 'user.roles_remove' END,
                     'user', u.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object(CASE WHEN p_assign THEN 'assigned'
                                             ELSE 'removed' END, touched),
                     NULL);

    RETURN um_user_roles_json(u);
END
$$;


-- The text GET /users?search= looks in: names, email and username.  An
-- immutable wrapper, so a trigram index can hold it.
CREATE FUNCTION um_user_search_text(p_first text, p_last text, p_email text,
                                    p_username text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_first, '') || ' ' || coalesce(p_last, '') || ' '
           || coalesce(p_email, '') || ' ' || coalesce(p_username, '')
$$;

-- What GET /users/search matches: the names (weight A) and the email
-- (weight B), English stemming.  In emails and queries alike "@", ".", "+"
-- and "_" separate words, so "example.com" finds "john@example.com" and a
-- whole address finds its user.
CREATE FUNCTION um_user_tsv(p_first text, p_last text, p_email text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('english'::regconfig,
                                 coalesce(p_first, '') || ' '
                                 || coalesce(p_last, '')), 'A')
        || setweight(to_tsvector('english'::regconfig,
                                 translate(coalesce(p_email, ''), '@.+_',
                                           '    ')), 'B')
$$;

-- A query of GET /users/search: "quoted phrases", -excluded words, "or".
CREATE FUNCTION um_user_tsquery(p_q text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT websearch_to_tsquery('english'::regconfig,
                                translate(p_q, '@.+_', '    '))
$$;


-- A "LIKE" pattern that finds p_text anywhere, its wildcards taken
-- literally.
CREATE FUNCTION um_like_pattern(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '%' || replace(replace(replace(p_text, '\', '\\'), '%', '\%'),
                          '_', '\_') || '%'
$$;


-- The sort keys of GET /users: column expressions (NULLs made comparable,
-- so keyset cursors work) and their types.  The indexes below use the
-- same expressions.
CREATE FUNCTION um_user_sort_key(p_sort_by text, OUT expr text,
                                 OUT type text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT k.expr, k.type
      FROM (VALUES
        ('created_at', 'u.created_at', 'timestamptz'),
        ('updated_at', 'u.updated_at', 'timestamptz'),
        ('last_login_at', 'coalesce(u.last_login_at, ''-infinity'')',
         'timestamptz'),
        ('email', 'u.email', 'citext'),
        ('username', 'coalesce(u.username, '''')', 'citext'),
        ('first_name', 'coalesce(u.first_name, '''')', 'text'),
        ('last_name', 'coalesce(u.last_name, '''')', 'text')
      ) AS k (name, expr, type)
     WHERE k.name = p_sort_by
$$;


-- GET /users.  p_filters: search, is_active, kyc_status, department, role,
-- include_deleted, sort_by, sort_order (checked by the module, and here
-- against the same lists).  With p_cursor (a next_cursor of an earlier
-- page) the page starts after the cursor's row, found through the sort
-- index instead of skipping p_offset rows; cursor_offset then counts the
-- rows up to the cursor, which places the page for has_prev/has_next.
--
-- The statement is put together from the fixed texts of
-- um_user_sort_key() and the conditions of the filters that were given,
-- so each is planned for exactly its filters; every value travels as a
-- parameter.
CREATE FUNCTION um_list_users(p_caller jsonb, p_filters jsonb,
                              p_limit integer, p_offset bigint,
                              p_cursor text,
                              OUT users jsonb, OUT total bigint,
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
    END IF;

    EXECUTE format('SELECT count(*), count(*) FILTER (WHERE NOT (%s))'
                   ' FROM users u WHERE %s', after_c, cond)
       INTO total, cursor_offset
      USING tenant, pattern,
            active, p_filters->>'kyc_status', p_filters->>'department',
            p_filters->>'role', c_key, c_id;

    EXECUTE format('SELECT coalesce(jsonb_agg(um_user_json(p.u, true)'
                   '                          ORDER BY p.n), ''[]''),'
                   ' (array_agg(p.k ORDER BY p.n DESC))[1],'
                   ' (array_agg((p.u).id ORDER BY p.n DESC))[1],'
                   ' count(*)'
                   ' FROM (SELECT q.*, row_number() OVER () AS n'
                   '  FROM (SELECT u, (%1$s)::text AS k FROM users u'
                   '   WHERE %2$s AND %3$s'
                   '   ORDER BY %1$s %4$s, u.id %4$s'
                   '   LIMIT $9 OFFSET $10) q) p',
                   key_expr, cond, CASE WHEN p_cursor IS NULL THEN 'true'
                                        ELSE after_c END, dir)
       INTO users, last_key, last_id, n
      USING tenant, pattern,
            active, p_filters->>'kyc_status', p_filters->>'department',
            p_filters->>'role', c_key, c_id, p_limit, p_offset;

    IF p_cursor IS NULL THEN
        cursor_offset := NULL;
    END IF;

    IF coalesce(cursor_offset, p_offset) + n < total THEN
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
-- best matches first.  A query of stop words alone finds nothing; the
-- notice PostgreSQL raises for it is kept from the client.
CREATE FUNCTION um_search_users(p_caller jsonb, p_q text, p_limit integer,
                                p_offset bigint,
                                OUT users jsonb, OUT total bigint)
LANGUAGE plpgsql STABLE SET client_min_messages = warning AS $$
DECLARE
    tenant  uuid := (p_caller->>'tenant')::uuid;
    cond    text := 'u.deleted_at IS NULL'
                    ' AND um_user_tsv(u.first_name, u.last_name,'
                    ' u.email::text) @@ um_user_tsquery($2)';
BEGIN
    IF tenant IS NOT NULL THEN
        cond := 'u.organization_id = $1 AND ' || cond;
    END IF;

    -- the ranking needs every match anyway: count them on the way
    EXECUTE format('SELECT coalesce(jsonb_agg(um_user_json(p.u, true)'
                   '                          ORDER BY p.n), ''[]''),'
                   ' max(p.total)'
                   ' FROM (SELECT q.*, row_number() OVER () AS n'
                   '  FROM (SELECT u, count(*) OVER () AS total'
                   '   FROM users u WHERE %s'
                   '   ORDER BY ts_rank(um_user_tsv(u.first_name,'
                   '              u.last_name, u.email::text),'
                   '            um_user_tsquery($2)) DESC,'
                   '            u.last_name, u.first_name, u.id'
                   '   LIMIT $3 OFFSET $4) q) p', cond)
       INTO users, total
      USING tenant, p_q, p_limit, p_offset;

    IF total IS NULL THEN
        -- past the last page
        EXECUTE format('SELECT count(*) FROM users u WHERE %s', cond)
           INTO total
          USING tenant, p_q;
    END IF;
END
$$;


-- GET /users sorted by each key, per tenant, both directions (a btree is
-- read backwards just as well); users_org_created_idx (0001) serves
-- created_at.  A super admin's list across tenants, newest first:
CREATE INDEX users_org_updated_idx
    ON users (organization_id, updated_at, id);
CREATE INDEX users_org_last_login_idx
    ON users (organization_id,
              coalesce(last_login_at, '-infinity'::timestamptz), id);
CREATE INDEX users_org_email_sort_idx
    ON users (organization_id, email, id);
CREATE INDEX users_org_username_sort_idx
    ON users (organization_id, coalesce(username, ''::citext), id);
CREATE INDEX users_org_first_name_idx
    ON users (organization_id, coalesce(first_name, ''), id);
CREATE INDEX users_org_last_name_idx
    ON users (organization_id, coalesce(last_name, ''), id);
CREATE INDEX users_created_idx ON users (created_at, id);

-- the totals of GET /users (with or without is_active), and the user limit
-- of an organization: counted from the index alone
CREATE INDEX users_org_live_idx
    ON users (organization_id, is_active) WHERE deleted_at IS NULL;

-- GET /users?search=: ILIKE '%…%' through trigrams, within a tenant
CREATE INDEX users_search_trgm_idx
    ON users USING gin (organization_id,
                        um_user_search_text(first_name, last_name,
                                            email::text, username::text)
                        gin_trgm_ops);

-- GET /users/search: full text within a tenant
CREATE INDEX users_fts_idx
    ON users USING gin (organization_id,
                        um_user_tsv(first_name, last_name, email::text));
