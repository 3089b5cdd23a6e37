-- Two-factor authentication with TOTP (RFC 6238) and backup codes.
--
-- The module checks codes (the secret never leaves it in clear); these
-- functions keep the state that makes a code count once: the last TOTP
-- step accepted, which backup codes were used, how many attempts were
-- made, and which sign-in challenges are spent.  As for passwords, an
-- attempt is counted when it begins (um_mfa_begin) and forgiven when it
-- succeeds, so parallel guesses cannot get past the limit.
--
-- New SQLSTATEs: UMBAD (400, bad request) and UMUNA (401, unauthorized).

CREATE TABLE user_mfa (
    user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- AES-256-GCM, sealed by the module and bound to user_id
    secret           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- NULL until the first good code confirms the set-up
    enabled_at       timestamptz,
    -- the last TOTP step accepted: a code of this step or older is spent
    last_step        bigint NOT NULL DEFAULT -1,
    -- attempts since the last success, and when the last one began
    failures         integer NOT NULL DEFAULT 0,
    attempted_at     timestamptz,
    -- the last sign-in challenge completed (its "jti" and "iat"): it and
    -- every challenge issued before it are spent
    challenge_jti    uuid,
    challenge_floor  bigint NOT NULL DEFAULT 0
);

CREATE TABLE user_backup_codes (
    user_id    uuid NOT NULL REFERENCES user_mfa (user_id) ON DELETE CASCADE,
    -- HMAC-SHA-256 under the module's key: useless without it
    code_hash  text NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);


-- POST /users/2fa/enable, /user/auth/mfa/setup: a new secret and backup
-- codes, waiting for the first good code.  A set-up not yet confirmed is
-- replaced; an enabled one must be disabled first.
CREATE FUNCTION um_mfa_setup(p_user uuid, p_secret text, p_codes text[],
                             p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
BEGIN
    SELECT * INTO u FROM users
     WHERE id = p_user AND deleted_at IS NULL AND is_active
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    IF u.two_factor_enabled THEN
        RAISE EXCEPTION USING ERRCODE = 'UMBAD',
            MESSAGE = 'two-factor authentication is already enabled';
    END IF;

    INSERT INTO user_mfa AS m (user_id, secret)
    VALUES (p_user, p_secret)
    ON CONFLICT (user_id) DO UPDATE
       SET secret = excluded.secret, created_at = now(), enabled_at = NULL,
           last_step = -1, failures = 0, attempted_at = NULL;

    DELETE FROM user_backup_codes WHERE user_id = p_user;

    INSERT INTO user_backup_codes (user_id, code_hash)
    SELECT p_user, c FROM unnest(p_codes) c;

    PERFORM um_audit(u.organization_id, u.id, 'mfa.setup', 'user',
                     u.id::text, 'success', p_ip, p_ua, NULL,
                     jsonb_build_object('method', 'totp',
                                        'backup_codes',
                                        cardinality(p_codes)));

    RETURN jsonb_build_object('email', u.email);
END
$$;

-- An attempt begins: counted now, forgiven by a success.  state: "ok"
-- (secret and last_step to check the code with), "none" (no set-up, or
-- the account cannot sign in) or "locked" (retry_after seconds).
CREATE FUNCTION um_mfa_begin(p_user uuid, p_max integer, p_lock integer,
                             OUT state text, OUT secret text,
                             OUT last_step bigint, OUT enabled boolean,
                             OUT challenge_floor bigint,
                             OUT retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    window_start  timestamptz := now() - make_interval(secs => p_lock);
    last_try      timestamptz;
BEGIN
    UPDATE user_mfa m
       SET failures = CASE WHEN m.attempted_at < window_start THEN 0
                           ELSE m.failures END + 1,
           attempted_at = now()
      FROM users u
     WHERE m.user_id = p_user AND u.id = m.user_id
       AND u.deleted_at IS NULL AND u.is_active
       AND (m.failures < p_max OR m.attempted_at < window_start)
    RETURNING m.secret, m.last_step, m.enabled_at IS NOT NULL,
              m.challenge_floor
      INTO secret, last_step, enabled, challenge_floor;

    IF FOUND THEN
        state := 'ok';
        RETURN;
    END IF;

    SELECT m.attempted_at INTO last_try
      FROM user_mfa m JOIN users u ON u.id = m.user_id
     WHERE m.user_id = p_user AND u.deleted_at IS NULL AND u.is_active;

    IF NOT FOUND THEN
        state := 'none';
        RETURN;
    END IF;

    state := 'locked';
    retry_after := greatest(1, ceil(extract(epoch FROM
                       last_try + make_interval(secs => p_lock) - now())));
END
$$;

-- Spends the code an attempt presented: the TOTP step it matched, or the
-- hash of a backup code; both NULL when the module found no match.  Two
-- requests with the same code: one wins the row, the other sees it spent.
-- Returns whether the code counted, and forgives the attempt if so.
CREATE FUNCTION um_mfa_spend(p_user uuid, p_step bigint, p_backup text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_step IS NOT NULL THEN
        UPDATE user_mfa SET last_step = p_step, failures = 0
         WHERE user_id = p_user AND last_step < p_step;
        RETURN FOUND;
    END IF;

    IF p_backup IS NOT NULL THEN
        UPDATE user_backup_codes SET used_at = now()
         WHERE user_id = p_user AND code_hash = p_backup AND used_at IS NULL;

        IF FOUND THEN
            UPDATE user_mfa SET failures = 0 WHERE user_id = p_user;
            RETURN true;
        END IF;
    END IF;

    RETURN false;
END
$$;

CREATE FUNCTION um_mfa_codes_left(p_user uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM user_backup_codes
     WHERE user_id = p_user AND used_at IS NULL
$$;

-- POST /users/2fa/verify ("verify"), /users/2fa/disable ("disable") and
-- /users/2fa/backup-codes ("codes", with p_codes): the attempt ends.  A
-- good first code turns two-factor authentication on.  p_reason says why
-- the module refused the code (audited).
CREATE FUNCTION um_mfa_end(p_user uuid, p_action text, p_step bigint,
                           p_backup text, p_reason text, p_codes text[],
                           p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u        users;
    m        user_mfa;
    spent    boolean;
    action   text := 'mfa.' || p_action;
    changes  jsonb;
BEGIN
    spent := um_mfa_spend(p_user, p_step, p_backup);

    SELECT * INTO u FROM users WHERE id = p_user;

    IF NOT spent THEN
        PERFORM um_audit(u.organization_id, u.id, action, 'user', u.id::text,
                         'failure', p_ip, p_ua, NULL,
                         jsonb_build_object('reason',
                                            coalesce(p_reason, 'replayed')));
        RETURN jsonb_build_object('ok', false);
    END IF;

    SELECT * INTO m FROM user_mfa WHERE user_id = p_user FOR UPDATE;

    IF p_action = 'verify' AND m.enabled_at IS NULL THEN
        UPDATE user_mfa SET enabled_at = now() WHERE user_id = p_user;
        UPDATE users SET two_factor_enabled = true, updated_at = now()
         WHERE id = p_user;
        action := 'mfa.enable';
        changes := '{"two_factor_enabled": {"old": false, "new": true}}';

    ELSIF p_action = 'disable' THEN
        DELETE FROM user_mfa WHERE user_id = p_user;
        UPDATE users SET two_factor_enabled = false, updated_at = now()
         WHERE id = p_user;
        changes := '{"two_factor_enabled": {"old": true, "new": false}}';

    ELSIF p_action = 'codes' THEN
        DELETE FROM user_backup_codes WHERE user_id = p_user;
        INSERT INTO user_backup_codes (user_id, code_hash)
        SELECT p_user, c FROM unnest(p_codes) c;
    END IF;

    PERFORM um_audit(u.organization_id, u.id, action, 'user', u.id::text,
                     'success', p_ip, p_ua, changes,
                     jsonb_build_object('method',
                         CASE WHEN p_step IS NOT NULL THEN 'totp'
                              ELSE 'backup_code' END));

    RETURN jsonb_build_object(
        'ok', true,
        'two_factor_enabled', p_action <> 'disable',
        'backup_codes_remaining', um_mfa_codes_left(p_user));
END
$$;


-- The part of a successful sign-in that opens the session: shared by the
-- password step (no second factor) and the second step.  p_amr: the
-- authentication methods used (RFC 8176 names), for the audit trail.
CREATE FUNCTION um_login_session(p_user uuid, p_new_hash text,
                                 p_refresh_hash text, p_ttl_seconds integer,
                                 p_ip text, p_ua text, p_amr text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
    s  sessions;
BEGIN
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
                     jsonb_strip_nulls(jsonb_build_object(
                         'amr', to_jsonb(p_amr),
                         'password_rehashed',
                         CASE WHEN p_new_hash IS NOT NULL THEN true END)));

    RETURN jsonb_build_object(
        'claims', um_token_claims(u),
        'sid', s.id,
        'user', um_user_json(u, false));
END
$$;

-- The password step.  An account with two-factor authentication gets no
-- session yet: the answer asks for the second step, which
-- um_mfa_login() completes.
CREATE OR REPLACE FUNCTION um_login_finish(p_user uuid, p_ok boolean,
                                           p_reason text, p_login text,
                                           p_new_hash text,
                                           p_refresh_hash text,
                                           p_ttl_seconds integer,
                                           p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
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

    SELECT * INTO u FROM users WHERE id = p_user;

    IF NOT u.two_factor_enabled THEN
        RETURN um_login_session(p_user, p_new_hash, p_refresh_hash,
                                p_ttl_seconds, p_ip, p_ua, ARRAY['pwd']);
    END IF;

    UPDATE users
       SET failed_login_attempts = 0, locked_until = NULL,
           password_hash = coalesce(p_new_hash, password_hash)
     WHERE id = p_user;

    PERFORM um_audit(u.organization_id, u.id, 'auth.mfa_challenge',
                     'session', NULL, 'success', p_ip, p_ua, NULL, NULL);

    RETURN jsonb_build_object('mfa_required', true, 'user_id', u.id);
END
$$;

-- POST /auth/mfa/verify: the second step of a sign-in.  p_jti and
-- p_issued are the "jti" and "iat" of the challenge token: a challenge
-- completes once, and completing one spends every challenge issued
-- before it.
CREATE FUNCTION um_mfa_login(p_user uuid, p_jti uuid, p_issued bigint,
                             p_step bigint,
                             p_backup text, p_reason text,
                             p_refresh_hash text, p_ttl_seconds integer,
                             p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
BEGIN
    SELECT * INTO u FROM users WHERE id = p_user;

    IF EXISTS (SELECT 1 FROM user_mfa
                WHERE user_id = p_user
                  AND (challenge_floor > p_issued
                       OR challenge_jti = p_jti))
    THEN
        p_step := NULL;
        p_backup := NULL;
        p_reason := 'challenge_spent';
    END IF;

    IF NOT um_mfa_spend(p_user, p_step, p_backup) THEN
        PERFORM um_audit(u.organization_id, u.id, 'auth.login_failed',
                         'session', NULL, 'failure', p_ip, p_ua, NULL,
                         jsonb_build_object('reason',
                                            coalesce(p_reason, 'replayed'),
                                            'step', 'mfa'));
        RETURN NULL;
    END IF;

    UPDATE user_mfa SET challenge_floor = p_issued, challenge_jti = p_jti
     WHERE user_id = p_user AND challenge_floor <= p_issued
       AND challenge_jti IS DISTINCT FROM p_jti;

    IF NOT FOUND THEN
        -- a parallel request completed the same challenge first; undo the
        -- code this one spent
        RAISE EXCEPTION USING ERRCODE = 'UMUNA',
            MESSAGE = 'invalid or expired code';
    END IF;

    RETURN um_login_session(p_user, NULL, p_refresh_hash, p_ttl_seconds,
                            p_ip, p_ua,
                            ARRAY['pwd', CASE WHEN p_step IS NOT NULL
                                              THEN 'otp' ELSE 'mfa' END]);
END
$$;
