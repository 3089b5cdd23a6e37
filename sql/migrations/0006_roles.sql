-- The roles and permissions endpoints (src/api/um_roles.c,
-- src/api/um_permissions.c): the JSON of a role and of a permission, and
-- one function per mutating endpoint that makes the change and writes its
-- audit row in the same transaction.
--
-- Roles belong to an organization; a p_tenant of NULL means "any
-- organization" (a super admin who did not narrow it with X-Tenant-ID).
-- Permissions are global.  Errors for the client use the SQLSTATEs of
-- 0002_auth.sql: UMNOF, UMFBD, UMVAL (DETAIL names the field), UMCON.

-- GET /roles/{id} counts the holders of a built-in role by user_type.
CREATE INDEX users_org_type_idx
    ON users (organization_id, user_type) WHERE deleted_at IS NULL;

-- Role names travel in access tokens ("roles") and from there in
-- $usermgmt_roles, a comma-separated list an upstream may trust: a made
-- role must not take a name the module gives meaning to (super_admin,
-- org_admin, ...), nor hold a comma or a control character.  The
-- endpoints refuse such names with 422 first; these checks are the floor.
CREATE FUNCTION um_role_name_reserved(p_name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(p_name) IN ('super_admin', 'org_admin', 'manager', 'user')
$$;

ALTER TABLE roles
    ADD CONSTRAINT roles_name_reserved_check
        CHECK (is_builtin OR NOT um_role_name_reserved(name::text)),
    ADD CONSTRAINT roles_name_format_check
        CHECK (name::text !~ '[[:cntrl:],]');

-- ILIKE pattern of a search text: its own %, _ and \ match themselves.
CREATE FUNCTION um_rbac_pattern(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '%' || replace(replace(replace(p, '\', '\\'), '%', '\%'),
                          '_', '\_') || '%'
$$;

-- {field: {old, new}} for the keys whose values differ; timestamps aside.
CREATE FUNCTION um_rbac_changes(p_old jsonb, p_new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k,
                        jsonb_build_object(
                            'old', coalesce(p_old -> k, 'null'::jsonb),
                            'new', coalesce(p_new -> k, 'null'::jsonb))),
                    '{}')
      FROM (SELECT jsonb_object_keys(coalesce(p_old, '{}'))
            UNION
            SELECT jsonb_object_keys(coalesce(p_new, '{}'))) AS x (k)
     WHERE p_old -> k IS DISTINCT FROM p_new -> k
       AND k NOT IN ('created_at', 'updated_at')
$$;

CREATE FUNCTION um_permission_json(p permissions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id,
        'name', p.name,
        'resource', p.resource,
        'action', p.action,
        'description', p.description,
        'is_system', p.is_system,
        'created_at', um_ts(p.created_at),
        'updated_at', um_ts(p.updated_at))
$$;

CREATE FUNCTION um_role_json(r roles) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.id,
        'organization_id', r.organization_id,
        'name', r.name,
        'description', r.description,
        'is_active', r.is_active,
        'is_builtin', r.is_builtin,
        'permissions',
            coalesce((SELECT jsonb_agg(jsonb_build_object('id', p.id,
                                                          'name', p.name)
                                       ORDER BY p.name)
                        FROM role_permissions rp
                        JOIN permissions p ON p.id = rp.permission_id
                       WHERE rp.role_id = r.id), '[]'),
        'created_by', r.created_by,
        'created_at', um_ts(r.created_at),
        'updated_at', um_ts(r.updated_at))
$$;

-- The users who hold a role: those it is assigned to, and for a built-in
-- role those whose user_type stands for it (um_token_claims() agrees).
CREATE FUNCTION um_role_user_count(r roles) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM (
        SELECT u.id
          FROM users u
         WHERE r.is_builtin
           AND u.organization_id = r.organization_id
           AND u.deleted_at IS NULL
           AND u.user_type = CASE r.name WHEN 'org_admin' THEN 'admin'
                                         ELSE r.name::text END
        UNION
        SELECT ur.user_id
          FROM user_roles ur
          JOIN users u ON u.id = ur.user_id AND u.deleted_at IS NULL
         WHERE ur.role_id = r.id) AS holders
$$;

-- The ids of a "permission_ids" array that the caller may grant.  Every id
-- must exist (else 422).  p_grantor is what the caller's access token says:
-- {"super_admin": bool, "org_admin": bool, "permissions": [...]}.  A super
-- admin grants anything; nobody else grants "system:" permissions, and an
-- organization admin grants the rest; anybody else only what they hold, so
-- that roles:update is no way to more rights.
CREATE FUNCTION um_role_grantable(p_ids jsonb, p_grantor jsonb)
RETURNS uuid[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    ids     uuid[];
    denied  text;
BEGIN
    ids := ARRAY(SELECT DISTINCT x::uuid
                   FROM jsonb_array_elements_text(coalesce(p_ids, '[]')) x);

    IF (SELECT count(*) FROM permissions WHERE id = ANY (ids))
       <> cardinality(ids)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'permission_ids',
            MESSAGE = 'permission_ids names a permission that does not exist';
    END IF;

    IF coalesce((p_grantor ->> 'super_admin')::boolean, false) THEN
        RETURN ids;
    END IF;

    SELECT min(p.name::text) INTO denied
      FROM permissions p
     WHERE p.id = ANY (ids)
       AND (p.resource = 'system'
            OR NOT (coalesce((p_grantor ->> 'org_admin')::boolean, false)
                    OR p_grantor -> 'permissions' ? p.name::text
                    OR p_grantor -> 'permissions' ? '*'
                    OR p_grantor -> 'permissions' ? (p.resource || ':*')));

    IF denied IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMFBD',
            MESSAGE = 'you may not grant the permission ' || denied;
    END IF;

    RETURN ids;
END
$$;

-- A role of the caller's tenant, locked for a change; 404 otherwise.
CREATE FUNCTION um_role_lock(p_role uuid, p_tenant uuid) RETURNS roles
LANGUAGE plpgsql AS $$
DECLARE
    r  roles;
BEGIN
    SELECT * INTO r FROM roles
     WHERE id = p_role AND deleted_at IS NULL
       AND (p_tenant IS NULL OR organization_id = p_tenant)
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'role not found';
    END IF;

    RETURN r;
END
$$;

-- POST /roles.  p_fields: name, description, is_active, permission_ids.
CREATE FUNCTION um_role_create(p_actor uuid, p_org uuid, p_fields jsonb,
                               p_grantor jsonb, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    ids  uuid[];
    r    roles;
BEGIN
    PERFORM 1 FROM organizations WHERE id = p_org AND deleted_at IS NULL;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'organization not found';
    END IF;

    IF um_role_name_reserved(p_fields ->> 'name') THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'name',
            MESSAGE = 'name is reserved for a built-in role';
    END IF;

    ids := um_role_grantable(p_fields -> 'permission_ids', p_grantor);

    INSERT INTO roles (organization_id, name, description, is_active,
                       created_by)
    VALUES (p_org, p_fields ->> 'name', p_fields ->> 'description',
            coalesce((p_fields ->> 'is_active')::boolean, true), p_actor)
    RETURNING * INTO r;

    INSERT INTO role_permissions (role_id, permission_id, granted_by)
    SELECT r.id, unnest(ids), p_actor;

    PERFORM um_audit(r.organization_id, p_actor, 'role.create', 'role',
                     r.id::text, 'success', p_ip, p_ua,
                     um_rbac_changes(NULL, um_role_json(r) - 'id'), NULL);

    RETURN um_role_json(r);
END
$$;

-- PUT /roles/{id}: name, description, is_active, each optional.  A
-- built-in role keeps its name and stays active (409): the user_type of
-- users and the checks of the module stand for those names.
CREATE FUNCTION um_role_update(p_actor uuid, p_role uuid, p_tenant uuid,
                               p_fields jsonb, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old      roles;
    r        roles;
    changes  jsonb;
BEGIN
    old := um_role_lock(p_role, p_tenant);

    -- compared as text: not even the case of a built-in name changes
    IF old.is_builtin AND p_fields ? 'name'
       AND p_fields ->> 'name' <> old.name::text
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the name of a built-in role cannot change';
    END IF;

    IF NOT old.is_builtin AND um_role_name_reserved(p_fields ->> 'name')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'name',
            MESSAGE = 'name is reserved for a built-in role';
    END IF;

    IF old.is_builtin AND p_fields ? 'is_active'
       AND NOT (p_fields ->> 'is_active')::boolean
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'a built-in role cannot be deactivated';
    END IF;

    UPDATE roles SET
        name = CASE WHEN p_fields ? 'name'
                    THEN p_fields ->> 'name' ELSE name END,
        description = CASE WHEN p_fields ? 'description'
                           THEN p_fields ->> 'description'
                           ELSE description END,
        is_active = CASE WHEN p_fields ? 'is_active'
                         THEN (p_fields ->> 'is_active')::boolean
                         ELSE is_active END,
        updated_at = now()
     WHERE id = old.id
    RETURNING * INTO r;

    changes := um_rbac_changes(um_role_json(old), um_role_json(r));

    PERFORM um_audit(r.organization_id, p_actor, 'role.update', 'role',
                     r.id::text, 'success', p_ip, p_ua, changes, NULL);

    RETURN um_role_json(r) || jsonb_build_object('changes', changes);
END
$$;

-- DELETE /roles/{id}: a soft delete; the users it was assigned to lose it.
CREATE FUNCTION um_role_delete(p_actor uuid, p_role uuid, p_tenant uuid,
                               p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r  roles;
    n  bigint;
BEGIN
    r := um_role_lock(p_role, p_tenant);

    IF r.is_builtin THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'built-in roles (' || r.name
                      || ') cannot be deleted';
    END IF;

    WITH gone AS (DELETE FROM user_roles WHERE role_id = r.id RETURNING 1)
    SELECT count(*) INTO n FROM gone;

    UPDATE roles SET deleted_at = now(), updated_at = now()
     WHERE id = r.id
    RETURNING * INTO r;

    PERFORM um_audit(r.organization_id, p_actor, 'role.delete', 'role',
                     r.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object('deleted_at',
                         jsonb_build_object('old', NULL,
                                            'new', um_ts(r.deleted_at))),
                     jsonb_build_object('name', r.name,
                                        'unassigned_users', n));

    RETURN jsonb_build_object('id', r.id, 'deleted', true,
                              'deleted_at', um_ts(r.deleted_at),
                              'unassigned_users', n,
                              'message', 'role deleted');
END
$$;

-- the names of a role's permissions, for the audit trail
CREATE FUNCTION um_role_permission_names(p_role uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(p.name ORDER BY p.name), '[]')
      FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
     WHERE rp.role_id = p_role
$$;

-- POST /roles/{id}/permissions
CREATE FUNCTION um_role_permissions_add(p_actor uuid, p_role uuid,
                                        p_tenant uuid, p_ids jsonb,
                                        p_grantor jsonb, p_ip text,
                                        p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r       roles;
    ids     uuid[];
    before  jsonb;
BEGIN
    r := um_role_lock(p_role, p_tenant);
    ids := um_role_grantable(p_ids, p_grantor);
    before := um_role_permission_names(r.id);

    INSERT INTO role_permissions (role_id, permission_id, granted_by)
    SELECT r.id, unnest(ids), p_actor
    ON CONFLICT DO NOTHING;

    UPDATE roles SET updated_at = now() WHERE id = r.id RETURNING * INTO r;

    PERFORM um_audit(r.organization_id, p_actor, 'role.permissions_add',
                     'role', r.id::text, 'success', p_ip, p_ua,
                     um_rbac_changes(
                         jsonb_build_object('permissions', before),
                         jsonb_build_object('permissions',
                             um_role_permission_names(r.id))),
                     jsonb_build_object('permission_ids', to_jsonb(ids)));

    RETURN um_role_json(r);
END
$$;

-- DELETE /roles/{id}/permissions: taking back is not granting, so only
-- the ids are checked.
CREATE FUNCTION um_role_permissions_remove(p_actor uuid, p_role uuid,
                                           p_tenant uuid, p_ids jsonb,
                                           p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r       roles;
    ids     uuid[];
    before  jsonb;
BEGIN
    r := um_role_lock(p_role, p_tenant);
    ids := um_role_grantable(p_ids, '{"super_admin": true}');
    before := um_role_permission_names(r.id);

    DELETE FROM role_permissions
     WHERE role_id = r.id AND permission_id = ANY (ids);

    UPDATE roles SET updated_at = now() WHERE id = r.id RETURNING * INTO r;

    PERFORM um_audit(r.organization_id, p_actor, 'role.permissions_remove',
                     'role', r.id::text, 'success', p_ip, p_ua,
                     um_rbac_changes(
                         jsonb_build_object('permissions', before),
                         jsonb_build_object('permissions',
                             um_role_permission_names(r.id))),
                     jsonb_build_object('permission_ids', to_jsonb(ids)));

    RETURN um_role_json(r);
END
$$;

-- POST /permissions: p_name is "resource:action", checked by the caller
-- and by the table.  Permissions are global: the audit row has no
-- organization.
CREATE FUNCTION um_permission_create(p_actor uuid, p_name text,
                                     p_description text, p_ip text,
                                     p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    p  permissions;
BEGIN
    INSERT INTO permissions (name, resource, action, description)
    VALUES (p_name, split_part(p_name, ':', 1), split_part(p_name, ':', 2),
            p_description)
    RETURNING * INTO p;

    PERFORM um_audit(NULL, p_actor, 'permission.create', 'permission',
                     p.id::text, 'success', p_ip, p_ua,
                     um_rbac_changes(NULL, um_permission_json(p) - 'id'),
                     NULL);

    RETURN um_permission_json(p);
END
$$;

-- PUT /permissions/{id}: description; name (or resource, action) only of
-- permissions outside the catalogue, whose names the product relies on.
CREATE FUNCTION um_permission_update(p_actor uuid, p_id uuid, p_fields jsonb,
                                     p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old      permissions;
    p        permissions;
    v_name   text;
    changes  jsonb;
BEGIN
    SELECT * INTO old FROM permissions WHERE id = p_id FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'permission not found';
    END IF;

    v_name := coalesce(p_fields ->> 'resource', old.resource) || ':'
              || coalesce(p_fields ->> 'action', old.action);

    IF p_fields ? 'name' THEN
        IF (p_fields ? 'resource' OR p_fields ? 'action')
           AND p_fields ->> 'name' <> v_name
        THEN
            RAISE EXCEPTION USING ERRCODE = 'UMVAL', DETAIL = 'name',
                MESSAGE = 'name must be resource:action';
        END IF;

        v_name := p_fields ->> 'name';
    END IF;

    IF old.is_system AND v_name::citext <> old.name THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the name of a system permission cannot change';
    END IF;

    UPDATE permissions SET
        name = v_name,
        resource = split_part(v_name, ':', 1),
        action = split_part(v_name, ':', 2),
        description = CASE WHEN p_fields ? 'description'
                           THEN p_fields ->> 'description'
                           ELSE description END,
        updated_at = now()
     WHERE id = old.id
    RETURNING * INTO p;

    changes := um_rbac_changes(um_permission_json(old),
                               um_permission_json(p));

    PERFORM um_audit(NULL, p_actor, 'permission.update', 'permission',
                     p.id::text, 'success', p_ip, p_ua, changes, NULL);

    RETURN um_permission_json(p) || jsonb_build_object('changes', changes);
END
$$;

-- DELETE /permissions/{id}: gone from every role and user that held it.
CREATE FUNCTION um_permission_delete(p_actor uuid, p_id uuid, p_ip text,
                                     p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    p       permissions;
    nroles  bigint;
    nusers  bigint;
BEGIN
    SELECT * INTO p FROM permissions WHERE id = p_id FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF',
            MESSAGE = 'permission not found';
    END IF;

    IF p.is_system THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'system permissions (' || p.name
                      || ') cannot be deleted';
    END IF;

    WITH gone AS (DELETE FROM role_permissions WHERE permission_id = p.id
                  RETURNING 1)
    SELECT count(*) INTO nroles FROM gone;

    WITH gone AS (DELETE FROM user_permissions WHERE permission_id = p.id
                  RETURNING 1)
    SELECT count(*) INTO nusers FROM gone;

    DELETE FROM permissions WHERE id = p.id;

    PERFORM um_audit(NULL, p_actor, 'permission.delete', 'permission',
                     p.id::text, 'success', p_ip, p_ua,
                     um_rbac_changes(um_permission_json(p) - 'id', NULL),
                     jsonb_build_object('name', p.name,
                                        'roles', nroles, 'users', nusers));

    RETURN jsonb_build_object('id', p.id, 'deleted', true,
                              'name', p.name, 'roles', nroles,
                              'users', nusers,
                              'message', 'permission deleted');
END
$$;
