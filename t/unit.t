#!/usr/bin/perl
# Runs the C unit tests of t/unit/: each t/unit/NAME.c is compiled into a
# program and run; it passes when it compiles, exits 0, and its TAP output
# (if any) shows no "not ok" and as many results as its plan announces.
#
# Compiled with: cc -std=c11 -Wall -Wextra -Werror -g -I<root>/src -I<root>
#                   -I<root>/t/unit NAME.c [sources] -o ... -lcrypto -ljansson
# A test file can ask for more, in comments anywhere in it:
#   /* unit-sources: src/auth/um_base64url.c src/auth/um_jwt.c */
#   /* unit-cflags: -DUM_UNIT_TEST */
#   /* unit-libs: -loath */
# (source paths are relative to the project root).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempdir);
use POSIX ();
use Test::More;
use UM::Test;

my $root = UM::Test::project_root();
my @tests = sort glob("$root/t/unit/*.c");

plan skip_all => 'no C unit tests in t/unit/' unless @tests;

my $cc = $ENV{CC} // 'cc';
my $tmp = tempdir('usermgmt-unit-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# runs a command, returns (exit status, combined output)
sub run {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($?, $out);
}

sub directives {
    my ($file, $key) = @_;
    open my $fh, '<', $file or return ();
    my @v;
    while (my $line = <$fh>) {
        push @v, split ' ', $1 if $line =~ /\bunit-\Q$key\E:\s*(.*?)\s*(?:\*\/)?\s*$/;
    }
    return @v;
}

for my $src (@tests) {
    (my $name = $src) =~ s{.*/}{};
    (my $bin = "$tmp/$name") =~ s/\.c$//;

    my @sources = map { m{^/} ? $_ : "$root/$_" } directives($src, 'sources');
    my @cmd = ($cc, '-std=c11', '-Wall', '-Wextra', '-Werror', '-g',
               "-I$root/src", "-I$root", "-I$root/t/unit",
               directives($src, 'cflags'),
               $src, @sources, '-o', $bin,
               directives($src, 'libs'), '-lcrypto', '-ljansson');

    my ($st, $out) = run(@cmd);
    if ($st != 0) {
        fail("$name compiles");
        diag(join(' ', @cmd) . "\n$out");
        next;
    }

    ($st, $out) = run($bin);
    my @lines = split /\n/, $out;
    my @notok = grep { /^\s*not ok\b/ && !/#\s*TODO/i } @lines;
    my $results = grep { /^\s*(?:not )?ok\b/ } @lines;
    my ($planned) = map { /^1\.\.(\d+)/ ? $1 : () } @lines;
    my @why;
    push @why, 'exit status ' . ($st >> 8) . ($st & 127 ? ' (signal '
               . ($st & 127) . ')' : '') if $st;
    push @why, scalar(@notok) . ' failed' if @notok;
    push @why, "planned $planned, ran $results"
        if defined $planned && $planned != $results;
    ok(!@why, "$name" . (defined $planned ? " ($results tests)" : ''))
        or diag(join(', ', @why) . "\n$out");
}

done_testing();
