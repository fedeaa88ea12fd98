// CUDA backend module: the shared GPU kernels with CUDA runtime names.
#include <cuda_runtime.h>
#include <stdio.h>

#define gpuError_t cudaError_t
#define gpuSuccess cudaSuccess
#define gpuGetErrorString cudaGetErrorString
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuSetDevice cudaSetDevice
#define gpuDeviceProp cudaDeviceProp
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuMemGetInfo cudaMemGetInfo
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuMemset cudaMemset
#define gpuMemcpy cudaMemcpy
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuDeviceSynchronize cudaDeviceSynchronize
#define gpuGetLastError cudaGetLastError
#define gpuEvent_t cudaEvent_t
#define gpuEventCreate cudaEventCreate
#define gpuEventDestroy cudaEventDestroy
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventElapsedTime cudaEventElapsedTime
#define gpuFuncAttributes cudaFuncAttributes
#define gpuFuncGetAttributes cudaFuncGetAttributes
#define gpuDeviceReset cudaDeviceReset

// SASS for the architectures in SUANLI_CUDA_ARCHS plus PTX for newer ones: whether this device is
// covered is what cudaFuncGetAttributes answers (arch_supported in stream_gpu.h), so no list here.
static inline int cuda_arch_supported(const cudaDeviceProp *prop, char *why, size_t len) {
    if (prop->major >= 8) return 1;
    snprintf(why, len, "compute capability %d.%d; this build targets sm_80 and newer", prop->major, prop->minor);
    return 0;
}
#define GPU_ARCH_SUPPORTED cuda_arch_supported

#include "gpu/stream_gpu.h"
