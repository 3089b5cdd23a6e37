-- Sessions, refresh tokens, the audit trail, and the functions the
-- authentication endpoints call: each endpoint is one statement, and a
-- change and its audit row commit together.
--
-- Errors raised for the client use SQLSTATE class "UM": UMNOF (not found),
-- UMFBD (forbidden), UMVAL (validation: the DETAIL names the field) and
-- UMCON (conflict).  The message is safe to show.

-- timestamps as RFC 3339 UTC with a trailing Z
CREATE FUNCTION um_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

CREATE TABLE audit_logs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    organization_id uuid,
    actor_id        uuid,
    action          text NOT NULL,
    resource        text NOT NULL,
    resource_id     text,
    status          text NOT NULL CHECK (status IN ('success', 'failure')),
    ip              inet,
    user_agent      text,
    changes         jsonb,
    metadata        jsonb
);

-- GET /audit/logs of a tenant, newest first; a user's activity; exports
CREATE INDEX audit_logs_org_created_idx
    ON audit_logs (organization_id, created_at DESC);
CREATE INDEX audit_logs_actor_created_idx
    ON audit_logs (actor_id, created_at DESC);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at);

CREATE FUNCTION um_audit(p_org uuid, p_actor uuid, p_action text,
                         p_resource text, p_resource_id text, p_status text,
                         p_ip text, p_ua text, p_changes jsonb,
                         p_metadata jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO audit_logs (organization_id, actor_id, action, resource,
                            resource_id, status, ip, user_agent, changes,
                            metadata)
    VALUES (p_org, p_actor, p_action, p_resource, p_resource_id, p_status,
            p_ip::inet, left(p_ua, 512), p_changes, p_metadata)
$$;

-- A session is one sign-in: the family of refresh tokens rotated from it.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN
                        ('logout', 'reuse', 'password_change',
                         'password_reset', 'user_disabled', 'admin')),
    ip              inet,
    user_agent      text
);

-- revoking "all other sessions" of a user
CREATE INDEX sessions_user_live_idx
    ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id      uuid NOT NULL REFERENCES sessions (id),
    token_hash      bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);

CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- What a user looks like to the API; never the password hash.
CREATE FUNCTION um_user_json(u users, p_full boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
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
        'last_login_at', um_ts(u.last_login_at),
        'last_login_ip', host(u.last_login_ip),
        'failed_login_attempts',
            CASE WHEN p_full THEN u.failed_login_attempts END,
        'locked_until', CASE WHEN p_full THEN um_ts(u.locked_until) END,
        'created_by', u.created_by,
        'created_at', um_ts(u.created_at),
        'updated_at', um_ts(u.updated_at),
        'deleted_at', um_ts(u.deleted_at)))
      || jsonb_build_object(
        'is_active', u.is_active,
        'is_verified', u.email_verified,
        'email_verified', u.email_verified,
        'phone_verified', u.phone_verified,
        'two_factor_enabled', u.two_factor_enabled,
        'is_super_admin', u.is_super_admin)
$$;

-- The claims an access token carries for a user.  Later migrations
-- replace it as roles and permissions grow.
CREATE FUNCTION um_token_claims(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'sub', u.id,
        'tenant_id', u.organization_id,
        'email', u.email,
        'user_type', u.user_type,
        'department', u.department,
        'roles', to_jsonb(array_remove(ARRAY[
                     CASE WHEN u.is_super_admin THEN 'super_admin' END,
                     CASE u.user_type WHEN 'admin' THEN 'org_admin'
                                      ELSE u.user_type END], NULL)),
        'permissions', '[]'::jsonb))
$$;

-- POST /auth/register
CREATE FUNCTION um_register(p_email text, p_username text, p_hash text,
                            p_first text, p_last text, p_org_id uuid,
                            p_org_slug text, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    o  organizations;
    u  users;
BEGIN
    SELECT * INTO o FROM organizations
     WHERE deleted_at IS NULL
       AND CASE WHEN p_org_id IS NOT NULL THEN id = p_org_id
                ELSE slug = coalesce(p_org_slug, 'default') END
       FOR UPDATE;

    IF NOT FOUND OR NOT o.is_active OR NOT o.allow_self_registration THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'the organization does not accept registrations',
            DETAIL = CASE WHEN p_org_id IS NOT NULL THEN 'organization_id'
                          ELSE 'organization_slug' END;
    END IF;

    IF o.max_users IS NOT NULL AND
       (SELECT count(*) FROM users
         WHERE organization_id = o.id AND deleted_at IS NULL) >= o.max_users
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the organization has reached its user limit';
    END IF;

    INSERT INTO users (organization_id, email, username, password_hash,
                       first_name, last_name, password_changed_at)
    VALUES (o.id, p_email, p_username, p_hash, p_first, p_last, now())
    RETURNING * INTO u;

    PERFORM um_audit(o.id, u.id, 'user.register', 'user', u.id::text,
                     'success', p_ip, p_ua, NULL, NULL);

    RETURN um_user_json(u, false);
END
$$;

-- POST /auth/login, first step: find the account and count the attempt
-- before the password is checked, so parallel guesses cannot exceed the
-- limit.  A successful login resets the count.
CREATE FUNCTION um_login_begin(p_login text, p_org_slug text,
                               p_max_failures integer, p_lock_seconds integer,
                               OUT user_id uuid, OUT password_hash text,
                               OUT state text)
LANGUAGE plpgsql AS $$
DECLARE
    n    integer;
    uid  uuid;
BEGIN
    SELECT count(*), min(u.id::text)::uuid INTO n, uid
      FROM users u JOIN organizations o ON o.id = u.organization_id
     WHERE u.deleted_at IS NULL AND o.deleted_at IS NULL
       AND (u.email = p_login::citext OR u.username = p_login::citext)
       AND (p_org_slug IS NULL OR o.slug = p_org_slug::citext);

    -- nobody, or the same login in several organizations and none named
    IF n <> 1 THEN
        state := 'unknown';
        RETURN;
    END IF;

    UPDATE users u
       SET failed_login_attempts =
               CASE WHEN u.locked_until IS NOT NULL THEN 1
                    ELSE u.failed_login_attempts + 1 END,
           locked_until =
               CASE WHEN (CASE WHEN u.locked_until IS NOT NULL THEN 1
                               ELSE u.failed_login_attempts + 1 END)
                         >= p_max_failures
                    THEN now() + make_interval(secs => p_lock_seconds)
               END
      FROM organizations o
     WHERE u.id = uid AND o.id = u.organization_id
       AND u.is_active AND o.is_active
       AND (u.locked_until IS NULL OR u.locked_until <= now())
    RETURNING u.id, u.password_hash INTO user_id, password_hash;

    IF FOUND THEN
        state := 'ok';
        RETURN;
    END IF;

    user_id := uid;
    state := CASE WHEN EXISTS (SELECT 1 FROM users u
                                 JOIN organizations o
                                   ON o.id = u.organization_id
                                WHERE u.id = uid AND u.is_active
                                  AND o.is_active)
                  THEN 'locked' ELSE 'inactive' END;
END
$$;

-- POST /auth/login, second step.  On success: reset the count, open a
-- session with its first refresh token, audit; returns the claims and the
-- user.  On failure: audit only, returns NULL.
CREATE FUNCTION um_login_finish(p_user uuid, p_ok boolean, p_reason text,
                                p_login text, p_new_hash text,
                                p_refresh_hash text, p_ttl_seconds integer,
                                p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
    s  sessions;
BEGIN
    IF NOT p_ok THEN
        PERFORM um_audit((SELECT organization_id FROM users
                           WHERE id = p_user),
                         p_user, 'auth.login_failed', 'session', NULL,
                         'failure', p_ip, p_ua, NULL,
                         jsonb_build_object('reason', p_reason,
                                            'login', left(p_login, 255)));
        RETURN NULL;
    END IF;

    UPDATE users
       SET failed_login_attempts = 0,
           locked_until = NULL,
           last_login_at = now(),
           last_login_ip = p_ip::inet,
           password_hash = coalesce(p_new_hash, password_hash)
     WHERE id = p_user
    RETURNING * INTO u;

    INSERT INTO sessions (user_id, organization_id, expires_at, ip,
                          user_agent)
    VALUES (u.id, u.organization_id,
            now() + make_interval(secs => p_ttl_seconds), p_ip::inet,
            left(p_ua, 512))
    RETURNING * INTO s;

    INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
    VALUES (s.id, decode(p_refresh_hash, 'hex'), s.expires_at);

    PERFORM um_audit(u.organization_id, u.id, 'auth.login', 'session',
                     s.id::text, 'success', p_ip, p_ua, NULL,
                     CASE WHEN p_new_hash IS NOT NULL
                          THEN '{"password_rehashed": true}'::jsonb END);

    RETURN jsonb_build_object('claims', um_token_claims(u),
                              'sid', s.id,
                              'user', um_user_json(u, false));
END
$$;

-- POST /auth/refresh: rotate.  A token used twice revokes its family.
CREATE FUNCTION um_refresh(p_hash text, p_new_hash text, p_ip text,
                           p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t  refresh_tokens;
    s  sessions;
    u  users;
BEGIN
    SELECT * INTO t FROM refresh_tokens
     WHERE token_hash = decode(p_hash, 'hex') FOR UPDATE;

    IF NOT FOUND THEN
        RETURN jsonb_build_object('status', 'invalid');
    END IF;

    SELECT * INTO s FROM sessions WHERE id = t.session_id FOR UPDATE;

    IF s.revoked_at IS NOT NULL THEN
        RETURN jsonb_build_object('status', 'invalid');
    END IF;

    IF t.used_at IS NOT NULL THEN
        -- the token was stolen or replayed: end the whole family
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'reuse'
         WHERE id = s.id;

        PERFORM um_audit(s.organization_id, s.user_id, 'auth.refresh_reused',
                         'session', s.id::text, 'failure', p_ip, p_ua, NULL,
                         NULL);

        RETURN jsonb_build_object('status', 'reused', 'sid', s.id);
    END IF;

    SELECT * INTO u FROM users WHERE id = s.user_id;

    IF t.expires_at <= now() OR s.expires_at <= now()
       OR NOT u.is_active OR u.deleted_at IS NOT NULL
    THEN
        RETURN jsonb_build_object('status', 'invalid');
    END IF;

    UPDATE refresh_tokens SET used_at = now() WHERE id = t.id;

    INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
    VALUES (s.id, decode(p_new_hash, 'hex'), s.expires_at);

    UPDATE sessions SET last_used_at = now() WHERE id = s.id;

    PERFORM um_audit(s.organization_id, s.user_id, 'auth.refresh', 'session',
                     s.id::text, 'success', p_ip, p_ua, NULL, NULL);

    RETURN jsonb_build_object('status', 'ok',
                              'claims', um_token_claims(u),
                              'sid', s.id,
                              'expires_at',
                              extract(epoch FROM s.expires_at)::bigint);
END
$$;

-- POST /auth/logout: end the session of the token (and, when given, the
-- one of a refresh token of the same user).
CREATE FUNCTION um_logout(p_user uuid, p_sid uuid, p_refresh_hash text,
                          p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    ended uuid[];
BEGIN
    WITH gone AS (
        UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'
         WHERE user_id = p_user AND revoked_at IS NULL
           AND (id = p_sid
                OR id = (SELECT session_id FROM refresh_tokens
                          WHERE token_hash = decode(p_refresh_hash, 'hex')))
        RETURNING id, organization_id)
    SELECT array_agg(id) INTO ended FROM gone;

    PERFORM um_audit((SELECT organization_id FROM users WHERE id = p_user),
                     p_user, 'auth.logout', 'session', p_sid::text,
                     'success', p_ip, p_ua, NULL, NULL);

    RETURN to_jsonb(coalesce(ended, '{}'));
END
$$;

-- The password hash of a signed-in user, to check the current password.
CREATE FUNCTION um_password_of(p_user uuid,
                               OUT password_hash text, OUT email text,
                               OUT username text)
LANGUAGE sql STABLE AS $$
    SELECT password_hash, email::text, username::text
      FROM users WHERE id = p_user AND deleted_at IS NULL AND is_active
$$;

-- POST /auth/change-password: new hash, every other session ended.
-- Returns the ended sessions, whose access tokens the caller revokes.
CREATE FUNCTION um_change_password(p_user uuid, p_sid uuid, p_hash text,
                                   p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u      users;
    ended  uuid[];
BEGIN
    UPDATE users SET password_hash = p_hash, password_changed_at = now(),
                     updated_at = now()
     WHERE id = p_user AND deleted_at IS NULL
    RETURNING * INTO u;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    WITH gone AS (
        UPDATE sessions SET revoked_at = now(),
                            revoked_reason = 'password_change'
         WHERE user_id = p_user AND revoked_at IS NULL
           AND id IS DISTINCT FROM p_sid
        RETURNING id)
    SELECT array_agg(id) INTO ended FROM gone;

    PERFORM um_audit(u.organization_id, u.id, 'auth.password_change', 'user',
                     u.id::text, 'success', p_ip, p_ua, NULL,
                     jsonb_build_object('sessions_ended',
                                        coalesce(cardinality(ended), 0)));

    RETURN to_jsonb(coalesce(ended, '{}'));
END
$$;

-- PUT /users/me: the fields a user may change on their own profile.
-- p_fields holds only the fields sent; the answer lists what changed.
CREATE FUNCTION um_update_me(p_user uuid, p_fields jsonb, p_ip text,
                             p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    old      users;
    u        users;
    changes  jsonb;
BEGIN
    SELECT * INTO old FROM users
     WHERE id = p_user AND deleted_at IS NULL FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    UPDATE users SET
        username = CASE WHEN p_fields ? 'username'
                        THEN p_fields->>'username' ELSE username END,
        first_name = CASE WHEN p_fields ? 'first_name'
                          THEN p_fields->>'first_name' ELSE first_name END,
        last_name = CASE WHEN p_fields ? 'last_name'
                         THEN p_fields->>'last_name' ELSE last_name END,
        phone = CASE WHEN p_fields ? 'phone'
                     THEN p_fields->>'phone' ELSE phone END,
        phone_verified = CASE WHEN p_fields ? 'phone'
                               AND p_fields->>'phone'
                                   IS DISTINCT FROM phone
                              THEN false ELSE phone_verified END,
        avatar_url = CASE WHEN p_fields ? 'avatar_url'
                          THEN p_fields->>'avatar_url' ELSE avatar_url END,
        department = CASE WHEN p_fields ? 'department'
                          THEN p_fields->>'department' ELSE department END,
        date_of_birth = CASE WHEN p_fields ? 'date_of_birth'
                             THEN (p_fields->>'date_of_birth')::date
                             ELSE date_of_birth END,
        address = CASE WHEN p_fields ? 'address'
                       THEN p_fields->'address' ELSE address END,
        preferences = CASE WHEN p_fields ? 'preferences'
                           THEN p_fields->'preferences' ELSE preferences END,
        updated_at = now()
     WHERE id = p_user
    RETURNING * INTO u;

    SELECT coalesce(jsonb_object_agg(k.key,
                        jsonb_build_object(
                            'old', coalesce(o.value, 'null'::jsonb),
                            'new', coalesce(n.value, 'null'::jsonb))),
                    '{}')
      INTO changes
      FROM jsonb_each(um_user_json(u, false)) n
      FULL JOIN jsonb_each(um_user_json(old, false)) o ON o.key = n.key
     CROSS JOIN LATERAL (SELECT coalesce(n.key, o.key) AS key) k
     WHERE p_fields ? k.key AND o.value IS DISTINCT FROM n.value;

    PERFORM um_audit(u.organization_id, u.id, 'user.update', 'user',
                     u.id::text, 'success', p_ip, p_ua, changes, NULL);

    RETURN jsonb_build_object('user', um_user_json(u, false),
                              'changes', changes);
END
$$;
