/*
 * STREAM copy/triad and FP32 FMA on one GPU, written once for CUDA and HIP.
 * The backend .cu/.hip file includes this after defining the gpu* aliases.
 *
 * Verification mirrors the CPU kernels: the triad values are exact binary fractions
 * and FMA chains must end on their closed-form value bit for bit, so a card that
 * computes or stores wrongly fails instead of reporting a number.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpu/backend_abi.h"

#define STREAM_SCALAR 0.5
#define STREAM_MAX_REPS 40
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

#define SUANLI_HD __host__ __device__
#include "gpu/fma_closed_form.h"

__global__ void k_fma(long iters, unsigned long long *bad, int inject_fault) {
    unsigned tid = blockIdx.x * blockDim.x + threadIdx.x, variant = tid % FMA_VARIANTS;
    float x[FMA_CHAINS], a1[FMA_UNROLL], b1[FMA_UNROLL], a2[FMA_UNROLL], b2[FMA_UNROLL];
#pragma unroll
    for (int k = 0; k < FMA_CHAINS; k++) x[k] = fma_start(variant, k);
#pragma unroll
    for (int s = 0; s < FMA_UNROLL; s++) fma_operands(variant, s, &a1[s], &b1[s], &a2[s], &b2[s]);
    /* Self-test: an error at the very first step must still be visible at the end. */
    if (inject_fault && tid == 0) x[0] += 0x1p-20f;
    for (long it = 0; it < iters; it++) {
#pragma unroll
        for (int s = 0; s < FMA_UNROLL; s++) {
#pragma unroll
            for (int k = 0; k < FMA_CHAINS; k++) x[k] = fmaf(a1[s], b1[s], x[k]);
#pragma unroll
            for (int k = 0; k < FMA_CHAINS; k++) x[k] = fmaf(a2[s], b2[s], x[k]);
        }
    }
    unsigned local = 0;
#pragma unroll
    for (int k = 0; k < FMA_CHAINS; k++) local += x[k] != fma_start(variant, k);
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

/*
 * Refuses a device this module has no code for before launching anything: a missing code object
 * otherwise surfaces as hipErrorNoBinaryForGpu (an abort inside the HIP runtime on some releases) or
 * cudaErrorNoKernelImageForDevice in the middle of the run. The backend defines GPU_ARCH_SUPPORTED.
 */
static int arch_supported(const gpuDeviceProp *prop, suanli_gpu_result *out) {
    char why[200] = "";
    if (!GPU_ARCH_SUPPORTED(prop, why, sizeof why)) {
        snprintf(out->error, sizeof out->error, "no code object for this device: %s", why);
        return 0;
    }
    gpuFuncAttributes attr;
    gpuError_t e = gpuFuncGetAttributes(&attr, (const void *)k_copy);
    if (e != gpuSuccess) {
        snprintf(out->error, sizeof out->error, "no code object for this device: %s", gpuGetErrorString(e));
        return 0;
    }
    return 1;
}

extern "C" int suanli_gpu_bench(int device, uint64_t array_bytes, double budget_s, int inject_fault,
                                suanli_gpu_result *out) {
    memset(out, 0, sizeof *out);
    double *a = NULL, *b = NULL, *c = NULL;
    unsigned long long *bad_d = NULL, bad = 0;
    gpuEvent_t ev0 = NULL, ev1 = NULL;
    gpuDeviceProp prop;
    size_t free_b = 0, total_b = 0, n = 0;
    int grid = 0, fma_grid = 0, set = 0;
    double start = 0, best_copy = 1e30, best_triad = 1e30, best_fma = 1e30, t = 0;
    long iters = 1 << 10;

    CHECK(gpuSetDevice(device), "set device");
    set = 1;
    CHECK(gpuGetDeviceProperties(&prop, device), "device properties");
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    if (!arch_supported(&prop, out)) goto done;
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
        TIMED((k_fma<<<fma_grid, BLOCK>>>(iters, bad_d, 0)), t);
        if (t > budget_s / 10 || iters >= (1L << 22)) break;
        iters *= 2;
    }
    CHECK(gpuMemset(bad_d, 0, sizeof bad), "reset counter");
    start = wall_s();
    do {
        TIMED((k_fma<<<fma_grid, BLOCK>>>(iters, bad_d, inject_fault)), t);
        if (t < best_fma) best_fma = t;
        out->fma_reps++;
    } while (out->fma_reps < 3 || (wall_s() - start < budget_s && out->fma_reps < 20));
    CHECK(gpuMemcpy(&bad, bad_d, sizeof bad, gpuMemcpyDeviceToHost), "read verification");
    out->fma_mismatches = bad;
    /* 2 flops per FMA; 2 * FMA_UNROLL * FMA_CHAINS FMAs per loop trip and thread. */
    out->fma_gflops = 2.0 * 2 * FMA_UNROLL * FMA_CHAINS * (double)iters * fma_grid * BLOCK / best_fma / 1e9;

done:
    /* Teardown failures change nothing in the result; the reset below releases whatever is left. */
    if (a) (void)gpuFree(a);
    if (b) (void)gpuFree(b);
    if (c) (void)gpuFree(c);
    if (bad_d) (void)gpuFree(bad_d);
    if (ev0) (void)gpuEventDestroy(ev0);
    if (ev1) (void)gpuEventDestroy(ev1);
    /* Leave the device as we found it: no context, no memory held for the training job next to us. */
    if (set) (void)gpuDeviceReset();
    return out->error[0] ? -1 : 0;
}
