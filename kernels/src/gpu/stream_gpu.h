/*
 * STREAM copy/triad and FP32 FMA on one GPU, written once for CUDA and HIP.
 * The backend .cu/.hip file includes this after defining the gpu* aliases.
 *
 * Verification mirrors the CPU kernels: the triad values are exact binary fractions
 * and FMA chains are checked bit for bit against fmaf() on the host, so a card that
 * computes or stores wrongly fails instead of reporting a number.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpu/backend_abi.h"

#define STREAM_SCALAR 0.5
#define STREAM_MAX_REPS 40
#define FMA_CHAINS 8
#define FMA_VARIANTS 32
#define BLOCK 256

__global__ void k_init(double *a, double *b, double *c, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.0;
    }
}

__global__ void k_copy(double *__restrict__ c, const double *__restrict__ a, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) c[i] = a[i];
}

__global__ void k_triad(double *__restrict__ a, const double *__restrict__ b, const double *__restrict__ c, double s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        a[i] = b[i] + s * c[i];
}

__global__ void k_verify(const double *a, const double *b, const double *c, double ak, double ck, size_t n,
                         unsigned long long *bad) {
    unsigned long long local = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        local += (a[i] != ak) + (b[i] != 2.0) + (c[i] != ck);
    if (local) atomicAdd(bad, local);
}

__global__ void k_corrupt(double *a, size_t i) { a[i] = a[i] + 1.0; }

__host__ __device__ inline float fma_start(unsigned variant, unsigned chain) {
    return 1.0f + (float)(variant * FMA_CHAINS + chain) * 0x1p-12f;
}

__global__ void k_fma(long iters, float m, float add, const float *ref, unsigned long long *bad, int inject_fault) {
    unsigned tid = blockIdx.x * blockDim.x + threadIdx.x, variant = tid % FMA_VARIANTS;
    float x[FMA_CHAINS];
#pragma unroll
    for (int k = 0; k < FMA_CHAINS; k++) x[k] = fma_start(variant, k);
    for (long it = 0; it < iters; it++) {
#pragma unroll
        for (int k = 0; k < FMA_CHAINS; k++) x[k] = fmaf(x[k], m, add);
    }
    if (inject_fault && tid == 0) x[0] = x[0] + 1.0f;
    unsigned local = 0;
#pragma unroll
    for (int k = 0; k < FMA_CHAINS; k++) local += x[k] != ref[variant * FMA_CHAINS + k];
    if (local) atomicAdd(bad, (unsigned long long)local);
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(call, what)                                                                               \
    do {                                                                                                \
        gpuError_t e_ = (call);                                                                         \
        if (e_ != gpuSuccess) {                                                                         \
            snprintf(out->error, sizeof out->error, "%s: %s", what, gpuGetErrorString(e_));             \
            goto done;                                                                                  \
        }                                                                                               \
    } while (0)

extern "C" int suanli_gpu_abi_version(void) { return SUANLI_GPU_ABI_VERSION; }

extern "C" int suanli_gpu_device_count(char *err, size_t errlen) {
    int n = 0;
    gpuError_t e = gpuGetDeviceCount(&n);
    if (e != gpuSuccess) {
        /* e.g. "CUDA driver version is insufficient" on a node without a driver. */
        snprintf(err, errlen, "%s", gpuGetErrorString(e));
        return -1;
    }
    return n;
}

/* Times one launch with events; returns seconds, or -1 on a launch error. */
#define TIMED(launch, seconds)                                                       \
    do {                                                                             \
        CHECK(gpuEventRecord(ev0, 0), "event record");                               \
        launch;                                                                      \
        CHECK(gpuGetLastError(), "kernel launch");                                   \
        CHECK(gpuEventRecord(ev1, 0), "event record");                               \
        CHECK(gpuEventSynchronize(ev1), "kernel execution");                         \
        float ms_ = 0;                                                               \
        CHECK(gpuEventElapsedTime(&ms_, ev0, ev1), "event timing");                  \
        seconds = ms_ * 1e-3;                                                        \
    } while (0)

extern "C" int suanli_gpu_bench(int device, uint64_t array_bytes, double budget_s, int inject_fault,
                                suanli_gpu_result *out) {
    memset(out, 0, sizeof *out);
    double *a = NULL, *b = NULL, *c = NULL;
    float *ref_d = NULL;
    unsigned long long *bad_d = NULL, bad = 0;
    gpuEvent_t ev0 = NULL, ev1 = NULL;
    gpuDeviceProp prop;
    size_t free_b = 0, total_b = 0, n = 0;
    int grid = 0, fma_grid = 0;
    double start = 0, best_copy = 1e30, best_triad = 1e30, best_fma = 1e30, t = 0;
    long iters = 1 << 12;
    const float m = 0.99993896484375f, add = 0x1p-14f;
    float ref[FMA_VARIANTS * FMA_CHAINS];

    CHECK(gpuSetDevice(device), "set device");
    CHECK(gpuGetDeviceProperties(&prop, device), "device properties");
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    CHECK(gpuMemGetInfo(&free_b, &total_b), "memory info");
    out->memory_bytes = total_b;
    /* STREAM rule: each array >= 4x the last-level (L2) cache; at least 256 MiB, at most a quarter of free memory. */
    if (!array_bytes) {
        array_bytes = 4ull * (uint64_t)prop.l2CacheSize;
        if (array_bytes < (256ull << 20)) array_bytes = 256ull << 20;
        if (array_bytes > free_b / 4) array_bytes = free_b / 4;
    }
    n = array_bytes / sizeof(double);
    out->array_bytes = n * sizeof(double);
    CHECK(gpuMalloc((void **)&a, n * sizeof(double)), "allocate stream arrays");
    CHECK(gpuMalloc((void **)&b, n * sizeof(double)), "allocate stream arrays");
    CHECK(gpuMalloc((void **)&c, n * sizeof(double)), "allocate stream arrays");
    CHECK(gpuMalloc((void **)&bad_d, sizeof bad), "allocate counter");
    CHECK(gpuMalloc((void **)&ref_d, sizeof ref), "allocate reference");
    CHECK(gpuEventCreate(&ev0), "create event");
    CHECK(gpuEventCreate(&ev1), "create event");
    grid = prop.multiProcessorCount * 16;

    k_init<<<grid, BLOCK>>>(a, b, c, n);
    CHECK(gpuGetLastError(), "init launch");
    CHECK(gpuDeviceSynchronize(), "init");
    start = wall_s();
    for (int r = 0; r < STREAM_MAX_REPS; r++) {
        double tc = 0, tt = 0;
        TIMED((k_copy<<<grid, BLOCK>>>(c, a, n)), tc);
        TIMED((k_triad<<<grid, BLOCK>>>(a, b, c, STREAM_SCALAR, n)), tt);
        if (r > 0) { /* first repetition is warm-up */
            if (tc < best_copy) best_copy = tc;
            if (tt < best_triad) best_triad = tt;
        }
        out->stream_reps = r;
        if (r >= 2 && wall_s() - start > budget_s) break;
    }
    {
        double ak = 1.0, ck = 0.0;
        for (int r = 0; r <= out->stream_reps; r++) {
            ck = ak;
            ak = 2.0 + STREAM_SCALAR * ck;
        }
        if (inject_fault) {
            k_corrupt<<<1, 1>>>(a, n / 2);
            CHECK(gpuGetLastError(), "fault injection");
        }
        CHECK(gpuMemset(bad_d, 0, sizeof bad), "reset counter");
        k_verify<<<grid, BLOCK>>>(a, b, c, ak, ck, n, bad_d);
        CHECK(gpuGetLastError(), "verify launch");
        CHECK(gpuMemcpy(&bad, bad_d, sizeof bad, gpuMemcpyDeviceToHost), "read verification");
        out->stream_mismatches = bad;
    }
    out->copy_gbs = 2.0 * (double)out->array_bytes / best_copy / 1e9;
    out->triad_gbs = 3.0 * (double)out->array_bytes / best_triad / 1e9;

    /* FMA: a full GPU of threads, 8 independent chains each; grow iterations to ~budget/10 per launch. */
    fma_grid = prop.multiProcessorCount * 8;
    for (;;) {
        CHECK(gpuMemset(bad_d, 0, sizeof bad), "reset counter");
        TIMED((k_fma<<<fma_grid, BLOCK>>>(iters, m, add, ref_d, bad_d, 0)), t);
        if (t > budget_s / 10 || iters >= (1L << 24)) break;
        iters *= 2;
    }
    for (unsigned v = 0; v < FMA_VARIANTS; v++)
        for (unsigned k = 0; k < FMA_CHAINS; k++) {
            float x = fma_start(v, k);
            for (long it = 0; it < iters; it++) x = fmaf(x, m, add);
            ref[v * FMA_CHAINS + k] = x;
        }
    CHECK(gpuMemcpy(ref_d, ref, sizeof ref, gpuMemcpyHostToDevice), "upload reference");
    CHECK(gpuMemset(bad_d, 0, sizeof bad), "reset counter");
    start = wall_s();
    do {
        TIMED((k_fma<<<fma_grid, BLOCK>>>(iters, m, add, ref_d, bad_d, inject_fault)), t);
        if (t < best_fma) best_fma = t;
        out->fma_reps++;
    } while (out->fma_reps < 3 || (wall_s() - start < budget_s && out->fma_reps < 20));
    CHECK(gpuMemcpy(&bad, bad_d, sizeof bad, gpuMemcpyDeviceToHost), "read verification");
    out->fma_mismatches = bad;
    out->fma_gflops = 2.0 * FMA_CHAINS * (double)iters * fma_grid * BLOCK / best_fma / 1e9;

done:
    if (a) gpuFree(a);
    if (b) gpuFree(b);
    if (c) gpuFree(c);
    if (bad_d) gpuFree(bad_d);
    if (ref_d) gpuFree(ref_d);
    if (ev0) gpuEventDestroy(ev0);
    if (ev1) gpuEventDestroy(ev1);
    return out->error[0] ? -1 : 0;
}
