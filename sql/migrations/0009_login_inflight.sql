-- Sign-in attempts in flight.
--
-- Counting every attempt as a failure before its password is checked kept
-- parallel guesses under the limit, but it also locked an account when its
-- owner signed in from several places at once.  Now the failures count
-- when they are known, and the attempts under way count apart: an attempt
-- starts only while failures + attempts under way stay below the limit,
-- which still bounds parallel guesses by the limit.  An attempt that never
-- finishes (its worker died) stops counting after 30 seconds.

ALTER TABLE users
    ADD COLUMN login_inflight integer NOT NULL DEFAULT 0
        CHECK (login_inflight >= 0),
    ADD COLUMN login_inflight_until timestamptz;

-- Takes a place for a password check.  'ok' with the hash, or 'locked',
-- 'inactive', 'busy' (too many attempts under way) or 'unknown'.
CREATE FUNCTION um_attempt_begin(p_user uuid, p_max_failures integer,
                                 OUT password_hash text, OUT state text)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users u
       SET failed_login_attempts =
               CASE WHEN u.locked_until <= now() THEN 0
                    ELSE u.failed_login_attempts END,
           locked_until =
               CASE WHEN u.locked_until <= now() THEN NULL
                    ELSE u.locked_until END,
           login_inflight =
               CASE WHEN u.login_inflight_until > now()
                    THEN u.login_inflight + 1 ELSE 1 END,
           login_inflight_until = now() + interval '30 seconds'
      FROM organizations o
     WHERE u.id = p_user AND o.id = u.organization_id
       AND u.deleted_at IS NULL AND u.is_active AND o.is_active
       AND (u.locked_until IS NULL OR u.locked_until <= now())
       AND (CASE WHEN u.locked_until <= now() THEN 0
                 ELSE u.failed_login_attempts END)
           + (CASE WHEN u.login_inflight_until > now()
                   THEN u.login_inflight ELSE 0 END)
           < p_max_failures
    RETURNING u.password_hash INTO password_hash;

    IF FOUND THEN
        state := 'ok';
        RETURN;
    END IF;

    SELECT CASE WHEN u.locked_until > now() THEN 'locked'
                WHEN NOT u.is_active OR NOT o.is_active THEN 'inactive'
                ELSE 'busy' END
      INTO state
      FROM users u JOIN organizations o ON o.id = u.organization_id
     WHERE u.id = p_user AND u.deleted_at IS NULL;

    state := coalesce(state, 'unknown');
END
$$;

-- Gives the place back: a failure counts (and locks at the limit), a
-- success clears the count.
CREATE FUNCTION um_attempt_end(p_user uuid, p_ok boolean,
                               p_max_failures integer, p_lock_seconds integer)
RETURNS void LANGUAGE sql AS $$
    UPDATE users
       SET login_inflight = greatest(login_inflight - 1, 0),
           failed_login_attempts =
               CASE WHEN p_ok THEN 0 ELSE failed_login_attempts + 1 END,
           locked_until =
               CASE WHEN p_ok THEN NULL
                    WHEN failed_login_attempts + 1 >= p_max_failures
                    THEN now() + make_interval(secs => p_lock_seconds)
                    ELSE locked_until END
     WHERE id = p_user
$$;

CREATE OR REPLACE FUNCTION um_login_begin(p_login text, p_org_slug text,
                                          p_max_failures integer,
                                          p_lock_seconds integer,
                                          OUT user_id uuid,
                                          OUT password_hash text,
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

    user_id := uid;

    SELECT a.password_hash, a.state INTO password_hash, state
      FROM um_attempt_begin(uid, p_max_failures) a;
END
$$;

-- The second step of a login; it now also ends the attempt.
CREATE FUNCTION um_login_end(p_user uuid, p_ok boolean, p_reason text,
                             p_login text, p_new_hash text,
                             p_refresh_hash text, p_ttl_seconds integer,
                             p_ip text, p_ua text, p_max_failures integer,
                             p_lock_seconds integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    -- only a password checked against the account's own hash counts
    IF p_user IS NOT NULL AND (p_ok OR p_reason = 'wrong_password') THEN
        PERFORM um_attempt_end(p_user, p_ok, p_max_failures,
                               p_lock_seconds);
    END IF;

    RETURN um_login_finish(p_user, p_ok, p_reason, p_login, p_new_hash,
                           p_refresh_hash, p_ttl_seconds, p_ip, p_ua);
END
$$;

CREATE OR REPLACE FUNCTION um_password_check_begin(p_user uuid,
                                                   p_max_failures integer,
                                                   p_lock_seconds integer,
                                                   OUT password_hash text,
                                                   OUT email text,
                                                   OUT username text,
                                                   OUT state text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT a.password_hash, a.state INTO password_hash, state
      FROM um_attempt_begin(p_user, p_max_failures) a;

    SELECT u.email::text, u.username::text INTO email, username
      FROM users u WHERE u.id = p_user AND u.deleted_at IS NULL;
END
$$;

-- A refused password change: ends the attempt it took (if it took one)
-- as a failure, and audits it.
CREATE FUNCTION um_password_check_end(p_user uuid, p_counted boolean,
                                      p_max_failures integer,
                                      p_lock_seconds integer,
                                      p_ip text, p_ua text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_counted THEN
        PERFORM um_attempt_end(p_user, false, p_max_failures,
                               p_lock_seconds);
    END IF;

    PERFORM um_audit(organization_id, id, 'auth.password_change', 'user',
                     id::text, 'failure', p_ip, p_ua, NULL,
                     '{"reason": "wrong_password"}'::jsonb)
       FROM users WHERE id = p_user;
END
$$;

-- A successful change ends its attempt too (the count goes back to 0).
CREATE OR REPLACE FUNCTION um_change_password(p_user uuid, p_sid uuid,
                                              p_hash text, p_ip text,
                                              p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u      users;
    ended  uuid[];
BEGIN
    PERFORM um_attempt_end(p_user, true, 1, 1);

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
