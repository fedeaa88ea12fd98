// HIP backend module (Hygon DCU / AMD): the shared GPU kernels with HIP runtime names.
#include <hip/hip_runtime.h>
#include <stdio.h>
#include <string.h>

#define gpuError_t hipError_t
#define gpuSuccess hipSuccess
#define gpuGetErrorString hipGetErrorString
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuSetDevice hipSetDevice
#define gpuDeviceProp hipDeviceProp_t
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuMemGetInfo hipMemGetInfo
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuMemset hipMemset
#define gpuMemcpy hipMemcpy
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuDeviceSynchronize hipDeviceSynchronize
#define gpuGetLastError hipGetLastError
#define gpuEvent_t hipEvent_t
#define gpuEventCreate hipEventCreate
#define gpuEventDestroy hipEventDestroy
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventElapsedTime hipEventElapsedTime
#define gpuFuncAttributes hipFuncAttributes
#define gpuFuncGetAttributes hipFuncGetAttributes
#define gpuDeviceReset hipDeviceReset

// The --offload-arch targets this module was built with ("gfx906,gfx928"), from CMake.
#ifndef SUANLI_HIP_ARCH_LIST
#error "SUANLI_HIP_ARCH_LIST must name the --offload-arch targets (kernels/CMakeLists.txt sets it)"
#endif

// gcnArchName is "gfx928:sramecc+:xnack-": the part before ':' must be one of the built targets.
static inline int hip_arch_supported(const hipDeviceProp_t *prop, char *why, size_t len) {
    char arch[64];
    snprintf(arch, sizeof arch, "%s", prop->gcnArchName);
    arch[strcspn(arch, ":")] = '\0';
    const char *list = SUANLI_HIP_ARCH_LIST;
    size_t n = strlen(arch);
    for (const char *p = list; n && (p = strstr(p, arch)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    snprintf(why, len, "device is %s, this build has code for %s; rebuild with -DSUANLI_HIP_ARCHS=\"...;%s\"",
             arch[0] ? arch : "an unnamed architecture", list, arch[0] ? arch : "gfxNNN");
    return 0;
}
#define GPU_ARCH_SUPPORTED hip_arch_supported

#include "gpu/stream_gpu.h"
