/*
 * CPU throughput: STREAM copy/triad and FMA peak, with every result verified.
 *
 * Verification is exact, not statistical: the triad scalar is 0.5 and a starts at 1,
 * so after k repetitions a = 4 - 3*2^-k, a binary fraction that every correct FPU
 * (fused or not) computes bit for bit. One flipped bit anywhere fails the run.
 */
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define STREAM_SCALAR 0.5
#define STREAM_MAX_REPS 40
#define FMA_LANES 32

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- stream ---- */

static void stream_init(double *restrict a, double *restrict b, double *restrict c, size_t n) {
    /* Same static schedule as the kernels, so first touch places pages on the NUMA node that uses them. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.0;
    }
}

static void stream_copy(double *restrict c, const double *restrict a, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) c[i] = a[i];
}

static void stream_triad(double *restrict a, const double *restrict b, const double *restrict c, double s, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

static uint64_t stream_verify(const double *a, const double *b, const double *c, size_t n, int reps, double *checksum) {
    double ak = 1.0, ck = 0.0;
    for (int k = 0; k < reps; k++) {
        ck = ak;
        ak = 2.0 + STREAM_SCALAR * ck;
    }
    uint64_t bad = 0;
    double sum = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : bad, sum)
    for (size_t i = 0; i < n; i++) {
        bad += (a[i] != ak) + (b[i] != 2.0) + (c[i] != ck);
        sum += a[i] + b[i] + c[i];
    }
    *checksum = sum;
    return bad;
}

/* Runs up to max_reps repetitions (at least 2) within budget_s; the first is warm-up (STREAM rule). */
static int stream_run(uint64_t n, int max_reps, double budget_s, int inject_fault, suanli_stream_result *out) {
    double *a = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    double *b = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    double *c = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    if (!a || !b || !c || n == 0) {
        free(a); free(b); free(c);
        return -1;
    }
    if (max_reps < 2) max_reps = 2;
    if (max_reps > STREAM_MAX_REPS) max_reps = STREAM_MAX_REPS;
    stream_init(a, b, c, (size_t)n);
    double best_copy = INFINITY, best_triad = INFINITY, start = now_s();
    int reps = 0;
    while (reps < max_reps) {
        double t0 = now_s();
        stream_copy(c, a, (size_t)n);
        double t1 = now_s();
        stream_triad(a, b, c, STREAM_SCALAR, (size_t)n);
        double t2 = now_s();
        if (reps > 0) {
            if (t1 - t0 < best_copy) best_copy = t1 - t0;
            if (t2 - t1 < best_triad) best_triad = t2 - t1;
        }
        reps++;
        if (reps >= 2 && budget_s > 0 && now_s() - start > budget_s) break;
    }
    if (inject_fault) a[n / 2] = nextafter(a[n / 2], 10.0);
    double bytes = (double)n * sizeof(double);
    out->copy_gbs = 2.0 * bytes / best_copy / 1e9;
    out->triad_gbs = 3.0 * bytes / best_triad / 1e9;
    out->mismatches = stream_verify(a, b, c, (size_t)n, reps, &out->checksum);
    out->reps = reps - 1;
    out->threads = omp_get_max_threads();
    free(a); free(b); free(c);
    return 0;
}

int suanli_cpu_stream(uint64_t n, int32_t reps, int32_t threads, int32_t inject_fault, suanli_stream_result *out) {
    memset(out, 0, sizeof *out);
    int saved = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
    /* +1: the warm-up repetition is run but not timed. */
    int rc = stream_run(n, reps + 1, 0.0, inject_fault, out);
    omp_set_num_threads(saved);
    return rc;
}

/* Sum of the last-level caches across the machine: STREAM wants each array >= 4x this. */
static uint64_t last_level_cache_bytes(void) {
    uint64_t total = 0;
    int best_level = 0;
    char seen[64][64];
    int nseen = 0;
    for (int cpu = 0; cpu < 4096; cpu++) {
        char dir[128];
        snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu%d/cache", cpu);
        DIR *d = opendir(dir);
        if (!d) { if (cpu > 0) break; else continue; }
        closedir(d);
        for (int idx = 0; idx < 8; idx++) {
            char p[192], buf[64], shared[64] = "";
            int level = 0;
            unsigned long size_k = 0;
            FILE *f;
            snprintf(p, sizeof p, "%s/index%d/level", dir, idx);
            if (!(f = fopen(p, "r"))) break;
            if (fscanf(f, "%d", &level) != 1) level = 0;
            fclose(f);
            snprintf(p, sizeof p, "%s/index%d/size", dir, idx);
            if ((f = fopen(p, "r"))) {
                if (fgets(buf, sizeof buf, f)) size_k = strtoul(buf, NULL, 10);
                fclose(f);
            }
            snprintf(p, sizeof p, "%s/index%d/shared_cpu_list", dir, idx);
            if ((f = fopen(p, "r"))) {
                if (!fgets(shared, sizeof shared, f)) shared[0] = '\0';
                fclose(f);
            }
            if (level < best_level) continue;
            if (level > best_level) { best_level = level; total = 0; nseen = 0; }
            int dup = 0;
            for (int s = 0; s < nseen; s++) dup |= strcmp(seen[s], shared) == 0;
            if (dup || nseen >= 64) continue;
            snprintf(seen[nseen++], sizeof seen[0], "%s", shared);
            total += (uint64_t)size_k * 1024;
        }
    }
    return total ? total : 32ull << 20; /* unreadable sysfs: assume a large server L3 */
}

/* ---- FMA ---- */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
/* One binary runs on every node; pick the widest FMA the CPU has at run time. */
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FMA_CLONES
#endif

/* Independent chains keep both FMA pipes busy despite their latency. */
FMA_CLONES __attribute__((noinline)) static void fma_chains(double *restrict x, long iters, double m, double add) {
    double v[FMA_LANES];
    memcpy(v, x, sizeof v);
    for (long it = 0; it < iters; it++) {
#pragma omp simd
        for (int l = 0; l < FMA_LANES; l++) v[l] = fma(v[l], m, add);
    }
    memcpy(x, v, sizeof v);
}

static void fma_start(double *x) {
    for (int l = 0; l < FMA_LANES; l++) x[l] = 1.0 + l * 0x1p-10;
}

typedef struct fma_result { double gflops; uint64_t mismatches; int reps; long iters; } fma_result;

static void fma_run(double budget_s, int inject_fault, fma_result *out) {
    const double m = 0.99993896484375, add = 0x1p-14; /* exact binary constants; fixed point near 1 */
    int threads = omp_get_max_threads();
    double *res = calloc((size_t)threads * FMA_LANES, sizeof(double));
    memset(out, 0, sizeof *out);
    if (!res) return;
    /* Calibrate: grow iterations until one pass takes about a tenth of the budget. */
    long iters = 1 << 12;
    double t = 0;
    for (;;) {
        double x[FMA_LANES];
        fma_start(x);
        double t0 = now_s();
        fma_chains(x, iters, m, add);
        t = now_s() - t0;
        if (t > budget_s / 10 || iters > (1L << 30)) break;
        iters *= 2;
    }
    double ref[FMA_LANES];
    fma_start(ref);
    fma_chains(ref, iters, m, add);

    double best = INFINITY, start = now_s();
    int reps = 0;
    do {
        double t0 = now_s();
#pragma omp parallel
        {
            double *x = res + (size_t)omp_get_thread_num() * FMA_LANES;
            fma_start(x);
            fma_chains(x, iters, m, add);
        }
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        reps++;
    } while (reps < 3 || (now_s() - start < budget_s && reps < 20));
    if (inject_fault) res[FMA_LANES / 2] = nextafter(res[FMA_LANES / 2], 10.0);
    for (int th = 0; th < threads; th++)
        for (int l = 0; l < FMA_LANES; l++) out->mismatches += res[(size_t)th * FMA_LANES + l] != ref[l];
    out->gflops = 2.0 * FMA_LANES * (double)iters * threads / best / 1e9;
    out->reps = reps;
    out->iters = iters;
    free(res);
}

void bench_cpu(json *j, const suanli_bench_options *o) {
    int saved = omp_get_max_threads();
    if (o->threads > 0) omp_set_num_threads(o->threads);
    double budget = o->budget_s > 0 ? o->budget_s : 2.0;
    uint64_t llc = last_level_cache_bytes();
    uint64_t bytes = o->array_bytes ? o->array_bytes : 4 * llc;
    if (!o->array_bytes && bytes < (16ull << 20)) bytes = 16ull << 20;
    uint64_t n = bytes / sizeof(double);

    suanli_stream_result s;
    memset(&s, 0, sizeof s);
    int rc = stream_run(n, STREAM_MAX_REPS, budget, o->inject_fault, &s);
    fma_result f;
    fma_run(budget, o->inject_fault, &f);
    int stream_ok = rc == 0 && s.mismatches == 0, fma_ok = f.mismatches == 0 && f.reps > 0;
    char err[256] = "";
    if (rc != 0) snprintf(err, sizeof err, "cannot allocate 3 x %llu bytes for the stream arrays; lower --array-mib",
                          (unsigned long long)bytes);
    else if (!stream_ok) snprintf(err, sizeof err, "stream verification failed: %llu wrong elements", (unsigned long long)s.mismatches);
    else if (!fma_ok) snprintf(err, sizeof err, "fma verification failed: %llu wrong lanes", (unsigned long long)f.mismatches);

    bench_begin(j, "cpu");
    json_key(j, "status"); json_str(j, err[0] ? "error" : "ok");
    json_key(j, "error"); json_str(j, err[0] ? err : NULL);
    /* A result that failed verification is withheld: a broken machine must not report a good number. */
    json_key(j, "copy_gbs"); if (stream_ok) json_num(j, s.copy_gbs); else json_null(j);
    json_key(j, "triad_gbs"); if (stream_ok) json_num(j, s.triad_gbs); else json_null(j);
    json_key(j, "fma_gflops"); if (fma_ok) json_num(j, f.gflops); else json_null(j);
    json_key(j, "devices");
    json_arr(j);
    json_obj(j);
    json_key(j, "index"); json_int(j, 0);
    json_key(j, "name"); json_str(j, "cpu");
    json_key(j, "status"); json_str(j, err[0] ? "error" : "ok");
    json_key(j, "error"); json_str(j, err[0] ? err : NULL);
    json_key(j, "copy_gbs"); if (stream_ok) json_num(j, s.copy_gbs); else json_null(j);
    json_key(j, "triad_gbs"); if (stream_ok) json_num(j, s.triad_gbs); else json_null(j);
    json_key(j, "fma_gflops"); if (fma_ok) json_num(j, f.gflops); else json_null(j);
    json_key(j, "fma_dtype"); json_str(j, "fp64");
    json_key(j, "verified"); json_bool(j, stream_ok && fma_ok);
    json_key(j, "stream_mismatches"); json_int(j, (int64_t)s.mismatches);
    json_key(j, "fma_mismatches"); json_int(j, (int64_t)f.mismatches);
    json_key(j, "array_bytes"); json_int(j, (int64_t)(n * sizeof(double)));
    json_key(j, "last_level_cache_bytes"); json_int(j, (int64_t)llc);
    json_key(j, "stream_reps"); json_int(j, s.reps);
    json_key(j, "fma_reps"); json_int(j, f.reps);
    json_key(j, "threads"); json_int(j, omp_get_max_threads());
    json_end_obj(j);
    json_end_arr(j);
    json_end_obj(j);
    omp_set_num_threads(saved);
}
