/*
 * bench/argon2-time.c - the single-thread cost of one login's password check.
 *
 * Usage: argon2-time M_KIB T P RUNS
 *
 * Hashes a password once with argon2id (libargon2, the library the module
 * links), then verifies it RUNS times in this one thread, as a thread of
 * nginx's pool does for every login, and prints one line per verification:
 *
 *     <wall ms> <thread CPU ms>
 *
 * One untimed verification comes first: like a pool thread that has hashed
 * before, the loop then reuses memory that is already mapped instead of
 * paying the page faults of a fresh process (which the argon2 CLI's own
 * timing includes).
 *
 * Built and run by bench/run.sh: cc -O2 argon2-time.c -largon2
 */

#include <argon2.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static const char  password[] = "bench-Passphrase-4711";
static const char  salt[] = "bench-salt-16byt";


static double
ms_of(clockid_t clock)
{
    struct timespec  ts;

    if (clock_gettime(clock, &ts) != 0) {
        perror("argon2-time: clock_gettime");
        exit(1);
    }

    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static uint32_t
arg(const char *s, const char *what)
{
    char           *end;
    unsigned long   v;

    errno = 0;
    v = strtoul(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > UINT32_MAX) {
        fprintf(stderr, "argon2-time: bad %s '%s'\n", what, s);
        exit(2);
    }

    return (uint32_t) v;
}


int
main(int argc, char **argv)
{
    int        rc;
    char       encoded[256];
    double     w0, c0;
    uint32_t   m, t, p, runs, i;

    if (argc != 5) {
        fprintf(stderr, "usage: argon2-time M_KIB T P RUNS\n");
        return 2;
    }

    m = arg(argv[1], "memory");
    t = arg(argv[2], "iterations");
    p = arg(argv[3], "parallelism");
    runs = arg(argv[4], "runs");

    rc = argon2id_hash_encoded(t, m, p, password, strlen(password),
                               salt, strlen(salt), 32,
                               encoded, sizeof(encoded));
    if (rc != ARGON2_OK) {
        fprintf(stderr, "argon2-time: hash: %s\n", argon2_error_message(rc));
        return 1;
    }

    for (i = 0; i <= runs; i++) {
        w0 = ms_of(CLOCK_MONOTONIC);
        c0 = ms_of(CLOCK_THREAD_CPUTIME_ID);

        rc = argon2id_verify(encoded, password, strlen(password));

        if (rc != ARGON2_OK) {
            fprintf(stderr, "argon2-time: verify: %s\n",
                    argon2_error_message(rc));
            return 1;
        }

        if (i > 0) {                /* the first one is the warm-up */
            printf("%.3f %.3f\n", ms_of(CLOCK_MONOTONIC) - w0,
                   ms_of(CLOCK_THREAD_CPUTIME_ID) - c0);
        }
    }

    return 0;
}
