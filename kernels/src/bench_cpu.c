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
#pragma omp parallel for schedule(static) proc_bind(spread)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.0;
    }
}

static void stream_copy(double *restrict c, const double *restrict a, size_t n) {
#pragma omp parallel for simd schedule(static) proc_bind(spread)
    for (size_t i = 0; i < n; i++) c[i] = a[i];
}

static void stream_triad(double *restrict a, const double *restrict b, const double *restrict c, double s, size_t n) {
#pragma omp parallel for simd schedule(static) proc_bind(spread)
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
#pragma omp parallel for schedule(static) proc_bind(spread) reduction(+ : bad, sum)
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

/* ---- the container's limits (cgroup v2, else v1) ---- */

/* $SUANLI_CGROUP_ROOT (tests point it at a fixture) else /sys/fs/cgroup, which in a container with a
 * cgroup namespace is the container's own cgroup. */
static const char *cgroup_root(void) {
    const char *r = getenv("SUANLI_CGROUP_ROOT");
    return r && *r ? r : "/sys/fs/cgroup";
}

/* The first line of <root>/<name>, or 0 when absent. */
static int cgroup_read(const char *name, char *buf, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cgroup_root(), name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    return ok;
}

/* CPUs the CFS quota allows (rounded up), or 0 when unlimited or unreadable. */
static int cgroup_cpus(void) {
    char buf[128];
    long long quota = -1, period = 0;
    if (cgroup_read("cpu.max", buf, sizeof buf)) { /* v2: "max 100000" or "150000 100000" */
        if (strncmp(buf, "max", 3) == 0 || sscanf(buf, "%lld %lld", &quota, &period) != 2) return 0;
    } else if (cgroup_read("cpu/cpu.cfs_quota_us", buf, sizeof buf)) { /* v1 */
        quota = strtoll(buf, NULL, 10);
        if (cgroup_read("cpu/cpu.cfs_period_us", buf, sizeof buf)) period = strtoll(buf, NULL, 10);
    }
    if (quota <= 0 || period <= 0) return 0;
    return (int)((quota + period - 1) / period);
}

/* Bytes the container may still allocate (limit minus usage), or UINT64_MAX when unlimited. */
static uint64_t cgroup_memory_left(void) {
    char buf[128];
    unsigned long long limit = 0, used = 0;
    if (cgroup_read("memory.max", buf, sizeof buf)) { /* v2 */
        if (strncmp(buf, "max", 3) == 0 || sscanf(buf, "%llu", &limit) != 1) return UINT64_MAX;
        if (cgroup_read("memory.current", buf, sizeof buf)) used = strtoull(buf, NULL, 10);
    } else if (cgroup_read("memory/memory.limit_in_bytes", buf, sizeof buf)) { /* v1: huge = unlimited */
        limit = strtoull(buf, NULL, 10);
        if (limit >= (1ull << 62)) return UINT64_MAX;
        if (cgroup_read("memory/memory.usage_in_bytes", buf, sizeof buf)) used = strtoull(buf, NULL, 10);
    } else {
        return UINT64_MAX;
    }
    return limit > used ? limit - used : 0;
}

/* ---- FMA ---- */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
/* One binary runs on every node; pick the widest FMA the CPU has at run time. */
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FMA_CLONES
#endif

/*
 * Same closed-form recurrence as the GPU kernel (gpu/stream_gpu.h): each lane adds the exact product
 * (UV)*W and subtracts U*(VW), so it must end exactly where it started; an error at any step stays to
 * the end, and a multiplier that is wrong the same way twice does not cancel (different factors).
 * Only a flip of x's lowest significand bit (2^-52, below the 2^-51 grid) is rounded away.
 */
#define FMA_SETS 2 /* operand sets per trip; with 32 lanes this fills the 16 AVX2 registers */

static unsigned fma_hash(unsigned v) {
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    return v ^ (v >> 16);
}

typedef struct fma_ops { double a1[FMA_SETS], b1[FMA_SETS], a2[FMA_SETS], b2[FMA_SETS]; } fma_ops;

/* Odd U, V, W in [131073, 165139], different per thread: U*V*W lies in [2^51, 2^52), so every
 * product is exact and p = UVW * 2^-51 is in [1, 2) on the same 2^-51 grid as x0. */
static void fma_operands(unsigned seed, fma_ops *o) {
    for (int s = 0; s < FMA_SETS; s++) {
        unsigned h = fma_hash(0x51a7u + seed * FMA_SETS + (unsigned)s), g = fma_hash(h);
        double u = 131073 + 2 * (h % 17033), v = 131073 + 2 * ((h >> 15) % 17033), w = 131073 + 2 * (g % 17033);
        o->a1[s] = u * v * 0x1p-34; /* exact: U*V < 2^35 */
        o->b1[s] = w * 0x1p-17;
        o->a2[s] = -u * 0x1p-17;
        o->b2[s] = v * w * 0x1p-34;
    }
}

/* x0 = 1 + t * 2^-51: x0 + p in [2, 4) is exact (its ulp is 2^-51), and so is the way back. */
static void fma_start(unsigned seed, double *x) {
    for (int l = 0; l < FMA_LANES; l++) {
        unsigned h = fma_hash(seed * FMA_LANES + (unsigned)l + 1u);
        uint64_t t = ((uint64_t)h << 19 ^ fma_hash(h)) & ((1ull << 51) - 1);
        x[l] = 1.0 + (double)t * 0x1p-51;
    }
}

/* Independent lanes keep both FMA pipes busy despite their latency. */
FMA_CLONES __attribute__((noinline)) static void fma_chains(double *restrict x, long iters, const fma_ops *o) {
    double v[FMA_LANES];
    memcpy(v, x, sizeof v);
    for (long it = 0; it < iters; it++) {
        for (int s = 0; s < FMA_SETS; s++) {
            const double a1 = o->a1[s], b1 = o->b1[s], a2 = o->a2[s], b2 = o->b2[s];
#pragma omp simd
            for (int l = 0; l < FMA_LANES; l++) v[l] = fma(a1, b1, v[l]);
#pragma omp simd
            for (int l = 0; l < FMA_LANES; l++) v[l] = fma(a2, b2, v[l]);
        }
    }
    memcpy(x, v, sizeof v);
}

typedef struct fma_result { double gflops; uint64_t mismatches; int reps; long iters; } fma_result;

static void fma_run(double budget_s, int inject_fault, fma_result *out) {
    int threads = omp_get_max_threads();
    double *res = calloc((size_t)threads * FMA_LANES, sizeof(double));
    memset(out, 0, sizeof *out);
    if (!res) return;
    /* Calibrate: grow iterations until one pass takes about a tenth of the budget. */
    long iters = 1 << 10;
    fma_ops ops;
    fma_operands(0, &ops);
    for (;;) {
        double x[FMA_LANES];
        fma_start(0, x);
        double t0 = now_s();
        fma_chains(x, iters, &ops);
        double t = now_s() - t0;
        if (t > budget_s / 10 || iters > (1L << 28)) break;
        iters *= 2;
    }

    double best = INFINITY, start = now_s();
    int reps = 0;
    do {
        double t0 = now_s();
#pragma omp parallel proc_bind(spread)
        {
            unsigned me = (unsigned)omp_get_thread_num();
            double *x = res + (size_t)me * FMA_LANES;
            fma_ops mine;
            fma_operands(me, &mine);
            fma_start(me, x);
            /* Self-test: an error at the very first step must still be there at the end. */
            if (inject_fault && me == 0) x[FMA_LANES / 2] += 0x1p-20;
            fma_chains(x, iters, &mine);
        }
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        reps++;
    } while (reps < 3 || (now_s() - start < budget_s && reps < 20));
    for (int th = 0; th < threads; th++) {
        double x0[FMA_LANES];
        fma_start((unsigned)th, x0);
        for (int l = 0; l < FMA_LANES; l++) out->mismatches += res[(size_t)th * FMA_LANES + l] != x0[l];
    }
    out->gflops = 2.0 * 2 * FMA_SETS * FMA_LANES * (double)iters * threads / best / 1e9;
    out->reps = reps;
    out->iters = iters;
    free(res);
}

void bench_cpu(json *j, const suanli_bench_options *o) {
    int saved = omp_get_max_threads();
    const char *threads_capped_by = NULL, *array_capped_by = NULL;
    /* OpenMP counts the CPUs in the affinity mask; a CPU quota is tighter still: more threads than
     * the quota only queue behind the throttle and measure the scheduler, not the memory. */
    int quota = cgroup_cpus();
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
    } else if (quota > 0 && quota < saved) {
        omp_set_num_threads(quota);
        threads_capped_by = "cgroup cpu quota";
    }
    double budget = o->budget_s > 0 ? o->budget_s : 2.0;
    uint64_t llc = last_level_cache_bytes();
    uint64_t bytes = o->array_bytes ? o->array_bytes : 4 * llc;
    if (!o->array_bytes && bytes < (16ull << 20)) bytes = 16ull << 20;
    /* Three arrays in at most half of what the memory limit leaves: 4 x LLC is 9 GB on two large
     * sockets, and the OOM killer would take the whole container (the agent with it). */
    uint64_t left = cgroup_memory_left();
    if (left != UINT64_MAX && bytes > left / 6) {
        bytes = left / 6 > (1ull << 20) ? left / 6 : (1ull << 20);
        array_capped_by = "cgroup memory limit";
    }
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
    json_key(j, "threads_capped_by"); json_str(j, threads_capped_by);
    json_key(j, "array_capped_by"); json_str(j, array_capped_by);
    json_end_obj(j);
    json_end_arr(j);
    json_end_obj(j);
    omp_set_num_threads(saved);
}
