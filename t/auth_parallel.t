#!/usr/bin/perl
# Signing in from several places at once: correct passwords in parallel
# never lock the account, while parallel wrong guesses still stop at the
# limit (5).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test;

my $t = UM::Test->new(workers => 2,
                      http_extra => 'usermgmt_login_ip_max_failures 0;');

# n logins at the same moment; returns their statuses
sub parallel_logins {
    my ($email, $password, $n) = @_;
    my $start = time + 0.5;
    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            sleep($start - time) if $start > time;
            my $r = $t->login($email, $password);
            POSIX::_exit($r->{status} == 200 ? 0 : $r->{status} == 401 ? 1 : 2);
        }
        push @pids, $pid;
    }
    my @st;
    for my $pid (@pids) {
        waitpid($pid, 0);
        push @st, $? >> 8 == 0 ? 200 : $? >> 8 == 1 ? 401 : 'other';
    }
    return @st;
}

my $u = $t->new_user;

my @st = parallel_logins($u->{email}, $u->{password}, 5);
is(scalar(grep { $_ == 200 } @st), 5,
   'five parallel sign-ins with the right password all succeed')
    or diag("@st");

my ($failed, $locked) = $t->psql(
    q{SELECT failed_login_attempts, locked_until IS NOT NULL
        FROM users WHERE id = :'p1'}, $u->{id}) =~ /^(\d+)\|(\w)/
    ? ($1, $2) : ('?', '?');
is($failed, 0, '... no failure was counted');
is($locked, 'f', '... and the account is not locked');
is($t->login($u->{email}, $u->{password})->{status}, 200,
   '... a later sign-in works');

# parallel wrong guesses: the limit holds
my $v = $t->new_user;
@st = parallel_logins($v->{email}, 'Wrong-Guess-12345', 20);
is(scalar(grep { $_ eq 'other' } @st), 0, 'twenty parallel wrong guesses: all 401');

my $row = join '|', $t->psql(
    q{SELECT failed_login_attempts, locked_until IS NOT NULL
        FROM users WHERE id = :'p1'}, $v->{id});
is($row, '5|t', 'exactly 5 failures counted, and the account is locked');
is($t->login($v->{email}, $v->{password})->{status}, 401,
   'the right password is refused while locked');

done_testing();
