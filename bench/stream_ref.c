/*
 * Plain STREAM-style reference (after McCalpin's stream.c rules: arrays >= 4x LLC,
 * parallel first-touch init, best of NTIMES excluding the first, bytes counted as
 * STREAM counts them). bench/stream.py builds it with the library's own compiler
 * and flags and compares our kernels against it in the same run.
 *
 * usage: stream_ref N NTIMES  -> prints {"copy_gbs": ..., "triad_gbs": ...}
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: stream_ref N NTIMES\n"); return 2; }
    long n = atol(argv[1]);
    int ntimes = atoi(argv[2]);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c || ntimes < 2) return 1;
    const double scalar = 3.0;
#pragma omp parallel for
    for (long j = 0; j < n; j++) { a[j] = 1.0; b[j] = 2.0; c[j] = 0.0; }
    double best_copy = 1e30, best_triad = 1e30;
    for (int k = 0; k < ntimes; k++) {
        double t = omp_get_wtime();
#pragma omp parallel for
        for (long j = 0; j < n; j++) c[j] = a[j];
        double tc = omp_get_wtime() - t;
        t = omp_get_wtime();
#pragma omp parallel for
        for (long j = 0; j < n; j++) a[j] = b[j] + scalar * c[j];
        double tt = omp_get_wtime() - t;
        if (k > 0) {
            if (tc < best_copy) best_copy = tc;
            if (tt < best_triad) best_triad = tt;
        }
    }
    double check = 0;
    for (long j = 0; j < n; j += n / 16 + 1) check += a[j];
    printf("{\"copy_gbs\": %.4f, \"triad_gbs\": %.4f, \"check\": %.1f}\n", 2.0 * 8 * n / best_copy / 1e9,
           3.0 * 8 * n / best_triad / 1e9, check);
    free(a); free(b); free(c);
    return 0;
}
