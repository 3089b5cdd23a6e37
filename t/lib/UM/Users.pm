package UM::Users;

# Helpers for the t/users_*.t files: the super admin's token, a second
# organization, accounts of each kind made through POST /api/v1/users, and
# requests with a token.
#
#   my $t = UM::Test->new;
#   my $u = UM::Users->new($t);
#   my $admin = $u->admin;                         # the super admin
#   my $org = $u->org('acme');                     # a new organization
#   my $boss = $u->user($admin, user_type => 'admin', organization_id => $org);
#   my $r = $u->call(GET => "/api/v1/users/$boss->{id}", $boss);
#
# Only core Perl modules are used.

use strict;
use warnings;

use JSON::PP;

my $N = 0;

sub new {
    my ($class, $t) = @_;
    return bless { t => $t }, $class;
}

sub t { $_[0]{t} }

# The super admin, signed in: {id, email, password, token}.
sub admin {
    my ($self) = @_;
    return $self->{admin} //= do {
        my $t = $self->{t};
        my $l;
        # the first request may find the workers still connecting
        # (slowly, under valgrind): wait out a 503
        UM::Test::wait_until(sub {
            $l = $t->login($t->admin_email, $t->admin_password);
            $l->{status} != 503;
        }, $t->secs(10), 0.2);
        die "admin login: $l->{status} $l->{content}\n"
            unless $l->{status} == 200;
        { id => $l->{json}{data}{user}{id}, email => $t->admin_email,
          password => $t->admin_password,
          token => $l->{json}{data}{access_token},
          refresh => $l->{json}{data}{refresh_token},
          org => $l->{json}{data}{user}{organization_id} };
    };
}

# A new organization (its built-in roles come with it); returns its id.
sub org {
    my ($self, $slug, %o) = @_;
    $slug .= '-' . $$ . '-' . ++$N;
    my ($id) = $self->{t}->psql(
        q{INSERT INTO organizations (name, slug, max_users)
          VALUES (:'p1', :'p2', nullif(:'p3', '')::integer) RETURNING id},
        "Org $slug", $slug, $o{max_users} // '');
    return $id;
}

# An account made by $creator through POST /api/v1/users (with a password
# unless told otherwise), then signed in unless login => 0.  Returns
# {id, email, password, token, refresh, user}.
sub user {
    my ($self, $creator, %fields) = @_;
    my $t = $self->{t};
    my $login = exists $fields{login} ? delete $fields{login} : 1;
    $fields{email} //= $t->unique_email('u');
    $fields{password} //= 'Pw-' . join('', map { ('a' .. 'z')[rand 26] }
                                             1 .. 10) . '-91';
    my $r = $self->call(POST => '/api/v1/users', $creator, \%fields);
    die "POST /users $fields{email}: $r->{status} $r->{content}\n"
        unless $r->{status} == 201;
    my $u = { id => $r->{json}{data}{id}, email => $fields{email},
              password => $fields{password}, user => $r->{json}{data} };
    $self->relogin($u) if $login;
    return $u;
}

# Signs $u in again (a new token with the roles and permissions of now).
sub relogin {
    my ($self, $u) = @_;
    my $l = $self->{t}->login($u->{email}, $u->{password});
    die "login $u->{email}: $l->{status} $l->{content}\n"
        unless $l->{status} == 200;
    $u->{token} = $l->{json}{data}{access_token};
    $u->{refresh} = $l->{json}{data}{refresh_token};
    return $u;
}

# $u->call($method, $path, $who [, $body [, %headers]]): $who is an
# account (its token is sent) or undef (no token).
sub call {
    my ($self, $method, $path, $who, $body, %headers) = @_;
    my $t = $self->{t};
    my %o = (headers => { %headers });
    $o{headers}{authorization} = "Bearer $who->{token}"
        if $who && $who->{token};
    if (defined $body) {
        $o{body} = $body;
    }
    return $t->request($method, $path, \%o);
}

# The payloads a careless SQL builder would choke on.
sub injections {
    return ("' OR '1'='1", "'; DROP TABLE users; --",
            "\" OR \"\"=\"", "1; SELECT pg_sleep(5)--",
            "%' AND 1=1 AND '%'='", "Robert'); DROP TABLE students;--",
            "\\'; SELECT 1; --", "\$1", "') OR ('a'='a", "*/ OR 1=1 /*",
            "1' UNION SELECT password_hash FROM users--");
}

1;
