-- Roles (per organization) and permissions (global, "resource:action").
--
-- A user's effective permissions are those of the built-in role their
-- user_type maps to, of the roles assigned to them, and those granted to
-- them directly (each with an optional validity window).  Access tokens
-- carry them, so every endpoint and every "usermgmt_require" checks them
-- without a query.

CREATE TABLE permissions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        citext NOT NULL
                CHECK (name ~ '^[a-z][a-z0-9_]*:([a-z][a-z0-9_]*|\*)$'),
    resource    text NOT NULL,
    action      text NOT NULL,
    description text CHECK (char_length(description) <= 500),
    is_system   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (name = resource || ':' || action)
);

CREATE UNIQUE INDEX permissions_name_key ON permissions (name);
CREATE INDEX permissions_resource_idx ON permissions (resource, action);

CREATE TABLE roles (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            citext NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description     text CHECK (char_length(description) <= 500),
    is_active       boolean NOT NULL DEFAULT true,
    is_builtin      boolean NOT NULL DEFAULT false,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);

CREATE UNIQUE INDEX roles_org_name_key
    ON roles (organization_id, name) WHERE deleted_at IS NULL;

CREATE TABLE role_permissions (
    role_id       uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id uuid NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    granted_by    uuid REFERENCES users (id),
    granted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, permission_id)
);

CREATE INDEX role_permissions_permission_idx
    ON role_permissions (permission_id);

CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users (id),
    role_id     uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    assigned_by uuid REFERENCES users (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id)
);

CREATE INDEX user_roles_role_idx ON user_roles (role_id);

-- seed 001: permissions granted to one user, each with its validity
CREATE TABLE user_permissions (
    user_id       uuid NOT NULL REFERENCES users (id),
    permission_id uuid NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    granted_by    uuid REFERENCES users (id),
    granted_at    timestamptz NOT NULL DEFAULT now(),
    valid_from    timestamptz NOT NULL DEFAULT now(),
    valid_until   timestamptz,
    PRIMARY KEY (user_id, permission_id),
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);

CREATE INDEX user_permissions_permission_idx
    ON user_permissions (permission_id);

-- The catalogue: seed 001's permissions and this product's own resources.
INSERT INTO permissions (name, resource, action, description, is_system)
SELECT r || ':' || a, r, a, d, true
  FROM (VALUES
    ('users', 'read', 'View users'),
    ('users', 'create', 'Create users'),
    ('users', 'update', 'Edit users'),
    ('users', 'delete', 'Delete users'),
    ('users', 'manage_permissions', 'Manage user permissions'),
    ('tickets', 'read', 'View tickets'),
    ('tickets', 'create', 'Create tickets'),
    ('tickets', 'update', 'Edit tickets'),
    ('tickets', 'delete', 'Delete tickets'),
    ('tickets', 'close', 'Close tickets'),
    ('customers', 'read', 'View customers'),
    ('customers', 'create', 'Create customers'),
    ('customers', 'update', 'Edit customers'),
    ('customers', 'delete', 'Delete customers'),
    ('reports', 'read', 'View reports'),
    ('reports', 'export', 'Export reports'),
    ('master_data', 'read', 'View master data'),
    ('master_data', 'update', 'Edit master data'),
    ('activity_logs', 'read', 'View activity logs'),
    ('system', 'admin', 'Full system administration'),
    ('organizations', 'read', 'View organizations'),
    ('organizations', 'create', 'Create organizations'),
    ('organizations', 'update', 'Edit organizations'),
    ('organizations', 'delete', 'Delete organizations'),
    ('roles', 'read', 'View roles'),
    ('roles', 'create', 'Create roles'),
    ('roles', 'update', 'Edit roles and their permissions'),
    ('roles', 'delete', 'Delete roles'),
    ('roles', 'assign', 'Assign roles to users'),
    ('permissions', 'read', 'View permissions'),
    ('permissions', 'create', 'Create permissions'),
    ('permissions', 'update', 'Edit permissions'),
    ('permissions', 'delete', 'Delete permissions'),
    ('locations', 'read', 'View locations'),
    ('locations', 'create', 'Create locations'),
    ('locations', 'update', 'Edit locations'),
    ('locations', 'delete', 'Delete locations'),
    ('locations', 'assign', 'Assign users to locations'),
    ('audit', 'read', 'View the audit trail'),
    ('audit', 'export', 'Export the audit trail')
  ) AS c (r, a, d);

-- What the built-in roles hold.  org_admin also passes every check but
-- the "system:" ones, whatever is listed here.
CREATE FUNCTION um_builtin_permissions(p_role text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT unnest(CASE p_role
        WHEN 'org_admin' THEN ARRAY[
            'users:read', 'users:create', 'users:update', 'users:delete',
            'users:manage_permissions', 'roles:read', 'roles:create',
            'roles:update', 'roles:delete', 'roles:assign',
            'permissions:read', 'locations:read', 'locations:create',
            'locations:update', 'locations:delete', 'locations:assign',
            'audit:read', 'audit:export', 'organizations:read',
            'activity_logs:read', 'reports:read', 'reports:export']
        WHEN 'manager' THEN ARRAY[
            'users:read', 'roles:read', 'permissions:read',
            'locations:read', 'locations:assign', 'audit:read',
            'organizations:read', 'activity_logs:read', 'reports:read',
            'reports:export']
        ELSE ARRAY[
            'permissions:read', 'locations:read', 'organizations:read']
    END)
$$;

-- Every organization has org_admin, manager and user.
CREATE FUNCTION um_create_builtin_roles(p_org uuid) RETURNS void
LANGUAGE sql AS $$
    WITH r AS (
        INSERT INTO roles (organization_id, name, description, is_builtin)
        VALUES (p_org, 'org_admin', 'Administers the organization', true),
               (p_org, 'manager', 'Manages people and reports', true),
               (p_org, 'user', 'A member of the organization', true)
        ON CONFLICT DO NOTHING
        RETURNING id, name)
    INSERT INTO role_permissions (role_id, permission_id)
    SELECT r.id, p.id
      FROM r CROSS JOIN LATERAL um_builtin_permissions(r.name::text) AS b(name)
      JOIN permissions p ON p.name = b.name
$$;

CREATE FUNCTION um_organization_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM um_create_builtin_roles(NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER organizations_builtin_roles
    AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION um_organization_created();

DO $$ BEGIN PERFORM um_create_builtin_roles(id) FROM organizations; END $$;

-- The built-in role a user_type stands for.
CREATE FUNCTION um_builtin_role(p_user_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_user_type WHEN 'admin' THEN 'org_admin'
                            ELSE p_user_type END
$$;

-- The claims of an access token: roles and effective permissions.
CREATE OR REPLACE FUNCTION um_token_claims(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH my_roles AS (
        SELECT r.id, r.name::text AS name
          FROM roles r
         WHERE r.organization_id = u.organization_id
           AND r.deleted_at IS NULL AND r.is_active
           AND (r.name = um_builtin_role(u.user_type)
                OR r.id IN (SELECT role_id FROM user_roles
                             WHERE user_id = u.id))),
    my_permissions AS (
        SELECT p.name::text AS name
          FROM role_permissions rp JOIN permissions p
            ON p.id = rp.permission_id
         WHERE rp.role_id IN (SELECT id FROM my_roles)
        UNION
        SELECT p.name::text
          FROM user_permissions up JOIN permissions p
            ON p.id = up.permission_id
         WHERE up.user_id = u.id AND up.valid_from <= now()
           AND (up.valid_until IS NULL OR up.valid_until > now()))
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'sub', u.id,
        'tenant_id', u.organization_id,
        'email', u.email,
        'user_type', u.user_type,
        'department', u.department,
        'roles', (SELECT coalesce(jsonb_agg(n ORDER BY n), '[]')
                    FROM (SELECT 'super_admin' AS n WHERE u.is_super_admin
                          UNION
                          SELECT um_builtin_role(u.user_type)
                          UNION
                          SELECT name FROM my_roles) x),
        'permissions', (SELECT coalesce(jsonb_agg(name ORDER BY name), '[]')
                          FROM my_permissions)))
$$;
