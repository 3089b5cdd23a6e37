/* A few lines of TAP for the C unit tests. */

#ifndef _UM_TAP_H_INCLUDED_
#define _UM_TAP_H_INCLUDED_

#include <stdio.h>

static int  tap_n, tap_failed;

#define ok(cond, ...)                                                       \
    do {                                                                    \
        tap_n++;                                                            \
        if (!(cond)) {                                                      \
            tap_failed++;                                                   \
            printf("not ");                                                 \
        }                                                                   \
        printf("ok %d - ", tap_n);                                          \
        printf(__VA_ARGS__);                                                \
        printf("\n");                                                       \
    } while (0)

#define done_testing()                                                      \
    (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)

#endif
