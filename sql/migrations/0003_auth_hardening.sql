-- Sign-in hardening.
--
-- Changing the password checks the current one like a login does: the
-- attempt is counted first, a wrong one counts towards the lockout, so a
-- stolen access token cannot be used to guess the password.  A refresh
-- also needs the organization to be active.

CREATE FUNCTION um_password_check_begin(p_user uuid, p_max_failures integer,
                                        p_lock_seconds integer,
                                        OUT password_hash text,
                                        OUT email text, OUT username text,
                                        OUT state text)
LANGUAGE plpgsql AS $$
BEGIN
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
     WHERE u.id = p_user AND u.deleted_at IS NULL AND u.is_active
       AND (u.locked_until IS NULL OR u.locked_until <= now())
    RETURNING u.password_hash, u.email::text, u.username::text
         INTO password_hash, email, username;

    IF FOUND THEN
        state := 'ok';
        RETURN;
    END IF;

    SELECT u.email::text, u.username::text INTO email, username
      FROM users u WHERE u.id = p_user AND u.deleted_at IS NULL;

    state := CASE WHEN FOUND THEN 'locked' ELSE 'unknown' END;
END
$$;

CREATE FUNCTION um_password_check_failed(p_user uuid, p_ip text, p_ua text)
RETURNS void LANGUAGE sql AS $$
    SELECT um_audit(organization_id, id, 'auth.password_change', 'user',
                    id::text, 'failure', p_ip, p_ua, NULL,
                    '{"reason": "wrong_password"}'::jsonb)
      FROM users WHERE id = p_user
$$;

CREATE OR REPLACE FUNCTION um_change_password(p_user uuid, p_sid uuid,
                                              p_hash text, p_ip text,
                                              p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u      users;
    ended  uuid[];
BEGIN
    UPDATE users SET password_hash = p_hash, password_changed_at = now(),
                     failed_login_attempts = 0, locked_until = NULL,
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

CREATE OR REPLACE FUNCTION um_refresh(p_hash text, p_new_hash text,
                                      p_ip text, p_ua text)
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
       OR NOT EXISTS (SELECT 1 FROM organizations o
                       WHERE o.id = u.organization_id AND o.is_active
                         AND o.deleted_at IS NULL)
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
                              'expires_in',
                              greatest(0, ceil(extract(epoch FROM
                                  s.expires_at - now())))::bigint);
END
$$;
