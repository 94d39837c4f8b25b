/*
 * bench/bench.h — what the benchmark programs share: a monotonic clock in
 * milliseconds and a fatal error naming the program (define BENCH_PROGRAM).
 */
#ifndef TANDEM_BENCH_H
#define TANDEM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef BENCH_PROGRAM
#define BENCH_PROGRAM "bench"
#endif

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static inline void die(const char *what, const char *detail) {
    fprintf(stderr, BENCH_PROGRAM ": %s: %s\n", what, detail ? detail : "");
    exit(1);
}

#endif
