-- One user as the API shows it, built as text JSON.
--
-- GET /users/{id} and GET /users/me send PostgreSQL's text as it is, and
-- building it as jsonb cost them three more passes over the document
-- (sorting the keys, stripping the nulls into a new value, appending the
-- flags) before jsonb_out wrote it again as text.  json_build_object
-- appends each field once, in the order written here.  um_user_json keeps
-- its jsonb form for the callers that compare or aggregate users; its
-- keys and values are unchanged.

CREATE FUNCTION um_user_doc(u users, p_full boolean) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_strip_nulls(json_build_object(
        'id', u.id,
        'organization_id', u.organization_id,
        'tenant_id', u.organization_id,
        'email', u.email,
        'username', u.username,
        'first_name', u.first_name,
        'last_name', u.last_name,
        'phone', u.phone,
        'avatar_url', u.avatar_url,
        'department', u.department,
        'user_type', u.user_type,
        'date_of_birth', u.date_of_birth,
        'address', u.address,
        'kyc_status', u.kyc_status,
        'preferences', u.preferences,
        'is_active', u.is_active,
        'is_verified', u.email_verified,
        'email_verified', u.email_verified,
        'phone_verified', u.phone_verified,
        'two_factor_enabled', u.two_factor_enabled,
        'is_super_admin', u.is_super_admin,
        'last_login_at', um_ts(u.last_login_at),
        'last_login_ip', host(u.last_login_ip),
        'failed_login_attempts',
            CASE WHEN p_full THEN u.failed_login_attempts END,
        'locked_until', CASE WHEN p_full THEN um_ts(u.locked_until) END,
        'created_by', u.created_by,
        'created_at', um_ts(u.created_at),
        'updated_at', um_ts(u.updated_at),
        'deleted_at', um_ts(u.deleted_at)))
$$;

CREATE OR REPLACE FUNCTION um_user_json(u users, p_full boolean)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT um_user_doc(u, p_full)::jsonb
$$;
