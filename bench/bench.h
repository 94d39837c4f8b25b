/*
 * bench/bench.h — what the benchmark programs share: a monotonic clock in
 * milliseconds, a fatal error naming the program (define BENCH_PROGRAM), and
 * the percentiles of a run's samples as bench/run reads them.
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

/* qsort order of doubles. */
static inline int bench_compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static inline double bench_percentile(const double *sorted, int n, double p) {
    if (n == 0) return 0;
    int rank = (int)(p / 100.0 * n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* Sorts the samples (milliseconds) and prints PREFIX_n, _mean_ms, _p50_ms, _p90_ms, _p99_ms and
 * _max_ms as key=value lines, which bench/run reads. */
static inline void bench_report(const char *prefix, double *samples, int n) {
    qsort(samples, (size_t)n, sizeof *samples, bench_compare);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += samples[i];
    printf("%s_n=%d\n", prefix, n);
    printf("%s_mean_ms=%.3f\n", prefix, n ? sum / n : 0);
    printf("%s_p50_ms=%.3f\n", prefix, bench_percentile(samples, n, 50));
    printf("%s_p90_ms=%.3f\n", prefix, bench_percentile(samples, n, 90));
    printf("%s_p99_ms=%.3f\n", prefix, bench_percentile(samples, n, 99));
    printf("%s_max_ms=%.3f\n", prefix, n ? samples[n - 1] : 0);
}

#endif
