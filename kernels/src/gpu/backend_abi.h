/*
 * ABI between libsuanli_kernels and the GPU backend modules (libsuanli_cuda.so,
 * libsuanli_hip.so). The modules are dlopen'ed so the core library loads on nodes
 * without a CUDA or HIP runtime; this header is their whole contract.
 */
#ifndef SUANLI_GPU_BACKEND_ABI_H
#define SUANLI_GPU_BACKEND_ABI_H

#include <stddef.h>
#include <stdint.h>

#define SUANLI_GPU_ABI_VERSION 1

typedef struct suanli_gpu_result {
    char name[256];
    uint64_t memory_bytes;
    uint64_t array_bytes;
    double copy_gbs, triad_gbs, fma_gflops; /* measured; only trusted when the mismatch counts are 0 */
    uint64_t stream_mismatches, fma_mismatches;
    int32_t stream_reps, fma_reps;
    char error[256]; /* non-empty: the device failed (allocation, launch, ...) */
} suanli_gpu_result;

#ifdef __cplusplus
extern "C" {
#endif
/* Returns SUANLI_GPU_ABI_VERSION. */
int suanli_gpu_abi_version(void);
/* Number of usable devices, or -1 with the runtime's reason in err. */
int suanli_gpu_device_count(char *err, size_t errlen);
/* Measures one device; returns 0, or -1 with out->error set. */
int suanli_gpu_bench(int device, uint64_t array_bytes, double budget_s, int inject_fault, suanli_gpu_result *out);
#ifdef __cplusplus
}
#endif

#endif
