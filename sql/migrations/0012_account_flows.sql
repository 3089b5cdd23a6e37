-- Account security flows: password reset, email and phone verification,
-- KYC requests, and the outbox through which their messages leave.
--
-- nginx sends no mail and no SMS.  Every message (a reset link, an email
-- link, a phone code) is a row of the outbox, written in the transaction
-- that makes its token, and a mailer outside nginx delivers it (the
-- contract is in docs/account.md).  A token is stored only as its SHA-256;
-- its clear text lives in the outbox row until the mailer marks it sent.
--
-- The endpoints of src/api/um_account.c call one function each; it makes
-- the change and writes its audit row in one transaction.

-- How long each kind of one-time token lives, and how many wrong phone
-- codes a code survives: the one place that says so.
CREATE FUNCTION um_account_token_ttl(p_kind text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind
               WHEN 'password_reset' THEN interval '30 minutes'
               WHEN 'email_verification' THEN interval '24 hours'
               WHEN 'phone_verification' THEN interval '10 minutes'
           END
$$;

CREATE FUNCTION um_phone_code_max_attempts() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 5
$$;


-- One-time tokens of every kind.  A token is live while it is neither
-- used, nor revoked (a newer one of its kind, a change of the address it
-- went to, five wrong phone codes), nor expired.  sent_to is the address
-- or number it was sent to: it proves only that one.
CREATE TABLE account_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL
                CHECK (kind IN ('password_reset', 'email_verification',
                                'phone_verification')),
    user_id     uuid NOT NULL REFERENCES users (id),
    token_hash  bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    sent_to     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);

-- a reset or email link is found by its hash
CREATE INDEX account_tokens_hash_idx ON account_tokens (token_hash);

-- a user's live token of a kind: the phone code to check, the older ones
-- a new token revokes
CREATE INDEX account_tokens_user_live_idx
    ON account_tokens (user_id, kind)
    WHERE used_at IS NULL AND revoked_at IS NULL;


-- The messages waiting for the mailer (and, once sent, waiting to be
-- purged).  id orders nothing; available_at does.
CREATE TABLE outbox (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel          text NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient        text NOT NULL,
    template         text NOT NULL,
    payload          jsonb NOT NULL,
    organization_id  uuid,
    user_id          uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    available_at     timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sent_at          timestamptz,
    last_error       text
);

-- the mailer's poll: unsent messages that are due, oldest first
CREATE INDEX outbox_due_idx ON outbox (available_at) WHERE sent_at IS NULL;

-- the purge of sent messages
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- A listening mailer wakes up at once instead of at its next poll.
CREATE FUNCTION um_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('usermgmt_outbox', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION um_outbox_notify();


-- 256 bits from pgcrypto's OpenSSL-backed generator, base64url without
-- padding: the same shape as the refresh tokens the module makes.
CREATE FUNCTION um_random_token() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT translate(rtrim(encode(gen_random_bytes(32), 'base64'), '='),
                     '+/', '-_')
$$;

-- Six digits, uniform: a 32-bit draw is used only below the largest
-- multiple of a million it can reach, so no code is likelier than another.
CREATE FUNCTION um_random_code() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n  bigint;
BEGIN
    LOOP
        n := ('x' || encode(gen_random_bytes(4), 'hex'))::bit(32)::bigint;
        EXIT WHEN n < 4294000000;
    END LOOP;

    RETURN lpad((n % 1000000)::text, 6, '0');
END
$$;

-- Revokes the live tokens of some kinds of a user.
CREATE FUNCTION um_account_tokens_revoke(p_user uuid, p_kinds text[])
RETURNS void LANGUAGE sql AS $$
    UPDATE account_tokens SET revoked_at = now()
     WHERE user_id = p_user AND kind = ANY (p_kinds)
       AND used_at IS NULL AND revoked_at IS NULL
$$;

-- A new token of p_kind for u, older ones of that kind revoked, and its
-- message in the outbox.  A link token is hashed as the text the client
-- will present (um_token_hash() in C); a phone code with the user id in
-- front, since a million codes alone are quickly tried.  Returns when it
-- expires.
CREATE FUNCTION um_account_token_issue(u users, p_kind text)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    secret   text;
    sms      boolean := p_kind = 'phone_verification';
    expires  timestamptz := now() + um_account_token_ttl(p_kind);
    o        organizations;
BEGIN
    PERFORM um_account_tokens_revoke(u.id, ARRAY[p_kind]);

    IF sms THEN
        secret := um_random_code();
    ELSE
        secret := um_random_token();
    END IF;

    INSERT INTO account_tokens (kind, user_id, token_hash, sent_to,
                                expires_at)
    VALUES (p_kind, u.id,
            sha256(convert_to(CASE WHEN sms THEN u.id::text || secret
                                   ELSE secret END, 'UTF8')),
            CASE WHEN sms THEN u.phone ELSE u.email::text END,
            expires);

    SELECT * INTO o FROM organizations WHERE id = u.organization_id;

    INSERT INTO outbox (channel, recipient, template, payload,
                        organization_id, user_id)
    VALUES (CASE WHEN sms THEN 'sms' ELSE 'email' END,
            CASE WHEN sms THEN u.phone ELSE u.email::text END,
            p_kind,
            jsonb_build_object(CASE WHEN sms THEN 'code' ELSE 'token' END,
                               secret)
            || jsonb_strip_nulls(jsonb_build_object(
                   'user_id', u.id,
                   'email', u.email,
                   'phone', u.phone,
                   'username', u.username,
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'expires_at', um_ts(expires),
                   'organization', jsonb_build_object('id', o.id,
                                                      'name', o.name,
                                                      'slug', o.slug))),
            u.organization_id, u.id);

    RETURN expires;
END
$$;


-- Verification messages follow the account's addresses: a new account
-- gets an email link (and a phone code when it has a phone), a changed
-- email or phone a new one, and what was sent to the old one dies.  The
-- change itself is audited by the function that made it.  Bulk loads
-- under session_replication_role = replica (bench/seed.sh) skip this.
CREATE FUNCTION um_users_contact_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    email_changed  boolean;
    phone_changed  boolean;
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;
    END IF;

    email_changed := TG_OP = 'INSERT' OR NEW.email IS DISTINCT FROM OLD.email;
    phone_changed := TG_OP = 'INSERT' OR NEW.phone IS DISTINCT FROM OLD.phone;

    IF email_changed THEN
        -- a reset link in the old mailbox must not reach the account
        PERFORM um_account_tokens_revoke(NEW.id,
                    ARRAY['password_reset', 'email_verification']);

        IF NOT NEW.email_verified THEN
            PERFORM um_account_token_issue(NEW, 'email_verification');
        END IF;
    END IF;

    IF phone_changed THEN
        PERFORM um_account_tokens_revoke(NEW.id,
                                         ARRAY['phone_verification']);

        IF NEW.phone IS NOT NULL AND NOT NEW.phone_verified THEN
            PERFORM um_account_token_issue(NEW, 'phone_verification');
        END IF;
    END IF;

    RETURN NULL;
END
$$;

CREATE TRIGGER users_contact_created AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION um_users_contact_changed();

CREATE TRIGGER users_contact_changed AFTER UPDATE OF email, phone ON users
    FOR EACH ROW
    WHEN (OLD.email IS DISTINCT FROM NEW.email
          OR OLD.phone IS DISTINCT FROM NEW.phone)
    EXECUTE FUNCTION um_users_contact_changed();


-- POST /users/password/reset/request.  Known or not, the caller learns
-- nothing: the same answer after the same single call.  An address with
-- accounts in several organizations (and none named) gets a link for
-- each; each message names its organization.  An unknown address leaves
-- an anonymous audit row without the address.
CREATE FUNCTION um_password_reset_request(p_email text, p_org_slug text,
                                          p_ip text, p_ua text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    u  users;
    n  integer := 0;
BEGIN
    FOR u IN
        SELECT us.* FROM users us
          JOIN organizations o ON o.id = us.organization_id
         WHERE us.email = p_email::citext
           AND us.deleted_at IS NULL AND us.is_active
           AND o.deleted_at IS NULL AND o.is_active
           AND (p_org_slug IS NULL OR o.slug = p_org_slug::citext)
         ORDER BY us.id
           FOR UPDATE OF us
    LOOP
        PERFORM um_account_token_issue(u, 'password_reset');
        PERFORM um_audit(u.organization_id, u.id,
                         'auth.password_reset_request', 'user', u.id::text,
                         'success', p_ip, p_ua, NULL, NULL);
        n := n + 1;
    END LOOP;

    IF n = 0 THEN
        PERFORM um_audit(NULL, NULL, 'auth.password_reset_request', 'user',
                         NULL, 'failure', p_ip, p_ua, NULL,
                         '{"reason": "unknown_account"}'::jsonb);
    END IF;
END
$$;

-- POST /users/password/reset/confirm, first step: whose live reset token
-- this is, for the password policy (which refuses the email or username
-- in the password).  Nothing is consumed yet.
CREATE FUNCTION um_password_reset_lookup(p_hash text,
                                         OUT user_id uuid, OUT email text,
                                         OUT username text)
LANGUAGE sql STABLE AS $$
    SELECT u.id, u.email::text, u.username::text
      FROM account_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash = decode(p_hash, 'hex')
       AND t.kind = 'password_reset'
       AND t.used_at IS NULL AND t.revoked_at IS NULL
       AND t.expires_at > now()
       AND u.deleted_at IS NULL AND u.is_active
$$;

-- POST /users/password/reset/confirm, second step: consume the token, set
-- the new hash, clear the lockout, end every session, audit.  Of parallel
-- confirms of one token the first to update it wins; the others find it
-- used.  The reset link went to the account's current address (a change
-- of address revokes it), so the address counts as verified.  Returns the
-- ended sessions (whose access tokens the module deny-lists), or NULL
-- when the token is not live.
CREATE FUNCTION um_password_reset_confirm(p_hash text, p_new_hash text,
                                          p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t      account_tokens;
    u      users;
    ended  uuid[];
BEGIN
    UPDATE account_tokens SET used_at = now()
     WHERE token_hash = decode(p_hash, 'hex') AND kind = 'password_reset'
       AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
    RETURNING * INTO t;

    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    UPDATE users
       SET password_hash = p_new_hash,
           password_changed_at = now(),
           failed_login_attempts = 0,
           locked_until = NULL,
           email_verified = email_verified OR email = t.sent_to::citext,
           updated_at = now()
     WHERE id = t.user_id AND deleted_at IS NULL AND is_active
    RETURNING * INTO u;

    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    -- the other reset links, and the email links the reset made moot
    PERFORM um_account_tokens_revoke(u.id, ARRAY['password_reset',
                                                 'email_verification']);

    ended := um_end_user_sessions(u.id, 'password_reset');

    PERFORM um_audit(u.organization_id, u.id, 'auth.password_reset', 'user',
                     u.id::text, 'success', p_ip, p_ua, NULL,
                     jsonb_build_object('sessions_ended',
                                        cardinality(ended)));

    RETURN to_jsonb(ended);
END
$$;


-- POST /users/verify-email: a live link of the account's current address
-- marks it verified.  false when the token is not live.
CREATE FUNCTION um_verify_email(p_hash text, p_ip text, p_ua text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    t  account_tokens;
    u  users;
BEGIN
    UPDATE account_tokens SET used_at = now()
     WHERE token_hash = decode(p_hash, 'hex')
       AND kind = 'email_verification'
       AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
    RETURNING * INTO t;

    IF NOT FOUND THEN
        RETURN false;
    END IF;

    UPDATE users SET email_verified = true, updated_at = now()
     WHERE id = t.user_id AND deleted_at IS NULL
       AND email = t.sent_to::citext
    RETURNING * INTO u;

    IF NOT FOUND THEN
        RETURN false;
    END IF;

    PERFORM um_audit(u.organization_id, u.id, 'user.verify_email', 'user',
                     u.id::text, 'success', p_ip, p_ua,
                     '{"email_verified": {"new": true, "old": false}}',
                     NULL);

    RETURN true;
END
$$;

-- The signed-in user, locked, for the send endpoints.
CREATE FUNCTION um_account_user(p_user uuid) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    u  users;
BEGIN
    SELECT * INTO u FROM users
     WHERE id = p_user AND deleted_at IS NULL FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'UMNOF', MESSAGE = 'user not found';
    END IF;

    RETURN u;
END
$$;

-- POST /users/verify-email/resend: a new link to one's own address; the
-- older links die.  An address already verified is a conflict.
CREATE FUNCTION um_verify_email_resend(p_user uuid, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u        users;
    expires  timestamptz;
BEGIN
    u := um_account_user(p_user);

    IF u.email_verified THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the email address is already verified';
    END IF;

    expires := um_account_token_issue(u, 'email_verification');

    PERFORM um_audit(u.organization_id, u.id, 'user.verify_email_sent',
                     'user', u.id::text, 'success', p_ip, p_ua, NULL,
                     '{"channel": "email"}'::jsonb);

    RETURN jsonb_build_object(
        'success', true,
        'message', 'A new verification link has been sent.',
        'expires_at', um_ts(expires));
END
$$;

-- POST /users/verify-phone/send: a new code to one's own phone.
CREATE FUNCTION um_verify_phone_send(p_user uuid, p_ip text, p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u        users;
    expires  timestamptz;
BEGIN
    u := um_account_user(p_user);

    IF u.phone IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'UMVAL',
            MESSAGE = 'the account has no phone number', DETAIL = 'phone';
    END IF;

    IF u.phone_verified THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'the phone number is already verified';
    END IF;

    expires := um_account_token_issue(u, 'phone_verification');

    PERFORM um_audit(u.organization_id, u.id, 'user.verify_phone_sent',
                     'user', u.id::text, 'success', p_ip, p_ua, NULL,
                     '{"channel": "sms"}'::jsonb);

    RETURN jsonb_build_object(
        'success', true,
        'message', 'A new verification code has been sent.',
        'expires_at', um_ts(expires));
END
$$;

-- POST /users/verify-phone: p_hash is the SHA-256 (hex) of the user id
-- followed by the code.  A wrong code counts against the live one, which
-- dies at the limit; every try is audited.  The lock on the code makes
-- parallel guesses count one after the other.
CREATE FUNCTION um_verify_phone(p_user uuid, p_hash text, p_ip text,
                                p_ua text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    t  account_tokens;
    u  users;
BEGIN
    u := um_account_user(p_user);

    SELECT * INTO t FROM account_tokens
     WHERE user_id = u.id AND kind = 'phone_verification'
       AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
     ORDER BY created_at DESC
     LIMIT 1
       FOR UPDATE;

    IF NOT FOUND THEN
        PERFORM um_audit(u.organization_id, u.id, 'user.verify_phone',
                         'user', u.id::text, 'failure', p_ip, p_ua, NULL,
                         '{"reason": "no_live_code"}'::jsonb);
        RETURN false;
    END IF;

    IF t.token_hash <> decode(p_hash, 'hex')
       OR u.phone IS DISTINCT FROM t.sent_to
    THEN
        UPDATE account_tokens
           SET attempts = attempts + 1,
               revoked_at = CASE WHEN attempts + 1
                                      >= um_phone_code_max_attempts()
                                 THEN now() END
         WHERE id = t.id;

        PERFORM um_audit(u.organization_id, u.id, 'user.verify_phone',
                         'user', u.id::text, 'failure', p_ip, p_ua, NULL,
                         jsonb_build_object('reason', 'wrong_code',
                                            'attempts', t.attempts + 1));
        RETURN false;
    END IF;

    UPDATE account_tokens SET used_at = now() WHERE id = t.id;

    UPDATE users SET phone_verified = true, updated_at = now()
     WHERE id = u.id;

    PERFORM um_audit(u.organization_id, u.id, 'user.verify_phone', 'user',
                     u.id::text, 'success', p_ip, p_ua,
                     '{"phone_verified": {"new": true, "old": false}}',
                     NULL);

    RETURN true;
END
$$;


-- KYC requests.  A user asks; an administrator decides by setting
-- kyc_status with PUT /users/{id}, which closes the pending request.
CREATE TABLE kyc_requests (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id),
    organization_id     uuid NOT NULL REFERENCES organizations (id),
    verification_level  text NOT NULL
                        CHECK (verification_level IN ('basic', 'enhanced',
                                                      'premium')),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'approved',
                                          'rejected')),
    requested_at        timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    decided_by          uuid REFERENCES users (id),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);

-- at most one pending request per user
CREATE UNIQUE INDEX kyc_requests_pending_key
    ON kyc_requests (user_id) WHERE status = 'pending';

-- a user's latest request
CREATE INDEX kyc_requests_user_requested_idx
    ON kyc_requests (user_id, requested_at DESC);

CREATE FUNCTION um_kyc_json(k kyc_requests) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', k.id,
        'user_id', k.user_id,
        'verification_level', k.verification_level,
        'status', k.status,
        'requested_at', um_ts(k.requested_at),
        'decided_at', um_ts(k.decided_at),
        'decided_by', k.decided_by)
$$;

-- POST /users/kyc/request
CREATE FUNCTION um_kyc_request(p_user uuid, p_level text, p_ip text,
                               p_ua text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    u  users;
    k  kyc_requests;
BEGIN
    u := um_account_user(p_user);

    IF EXISTS (SELECT 1 FROM kyc_requests
                WHERE user_id = u.id AND status = 'pending')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'UMCON',
            MESSAGE = 'a KYC request is already pending';
    END IF;

    INSERT INTO kyc_requests (user_id, organization_id, verification_level)
    VALUES (u.id, u.organization_id, p_level)
    RETURNING * INTO k;

    UPDATE users SET kyc_status = 'pending', updated_at = now()
     WHERE id = u.id;

    PERFORM um_audit(u.organization_id, u.id, 'user.kyc_request',
                     'kyc_request', k.id::text, 'success', p_ip, p_ua,
                     jsonb_build_object('kyc_status',
                         jsonb_build_object(
                             'old', coalesce(to_jsonb(u.kyc_status),
                                             'null'::jsonb),
                             'new', 'pending')),
                     jsonb_build_object('user_id', u.id,
                                        'verification_level', p_level));

    RETURN jsonb_build_object(
        'success', true,
        'message', 'KYC verification request initiated. Please follow '
                   'the instructions in the KYC/AML section.',
        'kyc_status', 'pending',
        'request', um_kyc_json(k));
END
$$;

-- GET /users/kyc/status
CREATE FUNCTION um_kyc_status(p_user uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'kyc_status', u.kyc_status,
        'request', (SELECT um_kyc_json(k) FROM kyc_requests k
                     WHERE k.user_id = u.id
                     ORDER BY k.requested_at DESC, k.id
                     LIMIT 1))
      FROM users u
     WHERE u.id = p_user AND u.deleted_at IS NULL
$$;

-- An administrator's decision.  PUT /users/{id} sets kyc_status and
-- audits it as user.update with the change; that audit row, written in
-- the same transaction, names who decided, from where.  Reading it here
-- closes the pending request without the users function having to know
-- about requests, and audits the decision on the request itself.
CREATE FUNCTION um_kyc_decided() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    decision  text := NEW.changes->'kyc_status'->>'new';
    k         kyc_requests;
BEGIN
    IF decision IS NULL OR decision NOT IN ('approved', 'rejected') THEN
        RETURN NULL;
    END IF;

    UPDATE kyc_requests
       SET status = decision, decided_at = now(), decided_by = NEW.actor_id
     WHERE user_id = NEW.resource_id::uuid AND status = 'pending'
    RETURNING * INTO k;

    IF FOUND THEN
        PERFORM um_audit(NEW.organization_id, NEW.actor_id,
                         'user.kyc_decision', 'kyc_request', k.id::text,
                         'success', host(NEW.ip), NEW.user_agent,
                         jsonb_build_object('status',
                             jsonb_build_object('old', 'pending',
                                                'new', decision)),
                         jsonb_build_object('user_id', k.user_id,
                                            'verification_level',
                                            k.verification_level));
    END IF;

    RETURN NULL;
END
$$;

CREATE TRIGGER audit_logs_kyc_decided AFTER INSERT ON audit_logs
    FOR EACH ROW
    WHEN (NEW.action = 'user.update' AND NEW.resource = 'user'
          AND NEW.status = 'success' AND NEW.changes ? 'kyc_status')
    EXECUTE FUNCTION um_kyc_decided();


-- The mailer's side of the outbox (docs/account.md).
--
-- Claims up to p_limit due messages for p_lease_seconds: each claimed row
-- counts an attempt and is not due again before the lease ends, so a
-- mailer that dies mid-send leaves its messages to the next poll.  Rows
-- other mailers hold locked are skipped, not waited for.  A message that
-- failed ten times is no longer claimed.
CREATE FUNCTION um_outbox_claim(p_limit integer, p_lease_seconds integer)
RETURNS SETOF outbox LANGUAGE sql AS $$
    WITH due AS (
        SELECT id FROM outbox
         WHERE sent_at IS NULL AND available_at <= now() AND attempts < 10
         ORDER BY available_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED)
    UPDATE outbox o
       SET attempts = o.attempts + 1,
           available_at = now() + make_interval(secs => p_lease_seconds)
      FROM due
     WHERE o.id = due.id
    RETURNING o.*
$$;

-- Delivered: the secret leaves the payload at once.
CREATE FUNCTION um_outbox_sent(p_id uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE outbox
       SET sent_at = now(), last_error = NULL,
           payload = payload - 'token' - 'code'
     WHERE id = p_id
$$;

-- Not delivered: due again after a backoff that doubles with each attempt
-- (30 s, 1 min, 2 min, ... at most an hour).
CREATE FUNCTION um_outbox_failed(p_id uuid, p_error text) RETURNS void
LANGUAGE sql AS $$
    UPDATE outbox
       SET last_error = left(p_error, 1000),
           available_at = now()
               + least(interval '30 seconds' * power(2, greatest(attempts - 1,
                                                                 0)),
                       interval '1 hour')
     WHERE id = p_id
$$;

-- Forgets what is older than p_keep: sent messages, messages whose token
-- has long expired, and tokens used, revoked or expired that long ago.
CREATE FUNCTION um_account_flows_purge(p_keep interval) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM outbox
     WHERE sent_at < now() - p_keep
        OR (sent_at IS NULL
            AND created_at < now() - p_keep
                - um_account_token_ttl('email_verification'));
    DELETE FROM account_tokens
     WHERE coalesce(used_at, revoked_at, expires_at) < now() - p_keep
$$;
