-- Core schema: organizations (the tenant) and users.
-- Later migrations add roles, permissions, sessions, audit and the flows.

CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL
                            CHECK (char_length(name) BETWEEN 1 AND 200),
    slug                    citext NOT NULL
                            CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
    description             text,
    max_users               integer CHECK (max_users IS NULL OR max_users > 0),
    is_active               boolean NOT NULL DEFAULT true,
    allow_self_registration boolean NOT NULL DEFAULT false,
    settings                jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by              uuid,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);

CREATE UNIQUE INDEX organizations_slug_key
    ON organizations (slug) WHERE deleted_at IS NULL;

CREATE TABLE users (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id       uuid NOT NULL REFERENCES organizations (id),
    email                 citext NOT NULL CHECK (char_length(email) <= 255),
    username              citext CHECK (char_length(username) BETWEEN 3 AND 50),
    password_hash         text,
    first_name            text CHECK (char_length(first_name) <= 100),
    last_name             text CHECK (char_length(last_name) <= 100),
    phone                 text CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    avatar_url            text CHECK (char_length(avatar_url) <= 2048),
    department            text CHECK (char_length(department) <= 100),
    user_type             text NOT NULL DEFAULT 'user'
                          CHECK (user_type IN ('user', 'manager', 'admin')),
    is_super_admin        boolean NOT NULL DEFAULT false,
    date_of_birth         date,
    address               jsonb,
    kyc_status            text CHECK (kyc_status IN
                              ('pending', 'approved', 'rejected')),
    is_active             boolean NOT NULL DEFAULT true,
    email_verified        boolean NOT NULL DEFAULT false,
    phone_verified        boolean NOT NULL DEFAULT false,
    two_factor_enabled    boolean NOT NULL DEFAULT false,
    last_login_at         timestamptz,
    last_login_ip         inet,
    failed_login_attempts integer NOT NULL DEFAULT 0
                          CHECK (failed_login_attempts >= 0),
    locked_until          timestamptz,
    password_changed_at   timestamptz,
    preferences           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by            uuid REFERENCES users (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);

-- A deleted user frees their email and username for a new account.
CREATE UNIQUE INDEX users_org_email_key
    ON users (organization_id, email) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_org_username_key
    ON users (organization_id, username)
    WHERE deleted_at IS NULL AND username IS NOT NULL;

-- Login looks a user up by email (or username) across organizations when
-- no organization is named.
CREATE INDEX users_email_idx ON users (email) WHERE deleted_at IS NULL;
CREATE INDEX users_username_idx ON users (username)
    WHERE deleted_at IS NULL AND username IS NOT NULL;

-- Listing a tenant's users newest first.
CREATE INDEX users_org_created_idx
    ON users (organization_id, created_at DESC, id DESC);

ALTER TABLE organizations
    ADD CONSTRAINT organizations_created_by_fkey
    FOREIGN KEY (created_by) REFERENCES users (id);
