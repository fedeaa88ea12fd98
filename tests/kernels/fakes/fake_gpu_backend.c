/*
 * Fake GPU backend module (libsuanli_cuda.so / libsuanli_hip.so): the ABI of kernels/src/gpu/backend_abi.h
 * with results chosen by the environment, so the agent's health gate is tested end to end without a GPU.
 *
 *   SUANLI_FAKE_GPUS=N             devices the runtime lists (default 8)
 *   SUANLI_FAKE_GPU_CORRUPT=1,4    these devices fail verification (silent data corruption)
 *   SUANLI_FAKE_GPU_SLOW=2         these devices measure 40% of the normal figures
 *   SUANLI_FAKE_GPU_HANG=3         these devices never return (a wedged kernel)
 *   SUANLI_FAKE_GPU_CRASH=5        these devices abort the process (a runtime that aborts on a fault)
 *   SUANLI_FAKE_GPU_COPY_GBS=2900  copy bandwidth of a good device (fma: 20x this in GFLOPS)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu/backend_abi.h"

static int listed(const char *var, int device) {
    const char *v = getenv(var);
    if (!v) return 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (atoi(t) == device) return 1;
    return 0;
}

int suanli_gpu_abi_version(void) { return SUANLI_GPU_ABI_VERSION; }

int suanli_gpu_device_count(char *err, size_t errlen) {
    const char *n = getenv("SUANLI_FAKE_GPUS");
    int count = n ? atoi(n) : 8;
    if (count < 0) {
        snprintf(err, errlen, "fake runtime: driver not loaded");
        return -1;
    }
    return count;
}

int suanli_gpu_bench(int device, uint64_t array_bytes, double budget_s, int inject_fault, suanli_gpu_result *out) {
    (void)budget_s;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "Fake GPU %d", device);
    if (listed("SUANLI_FAKE_GPU_HANG", device))
        for (;;) pause();
    if (listed("SUANLI_FAKE_GPU_CRASH", device)) abort();
    const char *g = getenv("SUANLI_FAKE_GPU_COPY_GBS");
    double copy = g ? atof(g) : 2900.0;
    if (listed("SUANLI_FAKE_GPU_SLOW", device)) copy *= 0.4;
    out->memory_bytes = 80ull << 30;
    out->array_bytes = array_bytes ? array_bytes : 256ull << 20;
    out->copy_gbs = copy;
    out->triad_gbs = copy * 1.05;
    out->fma_gflops = copy * 20.0;
    out->stream_reps = out->fma_reps = 5;
    if (inject_fault || listed("SUANLI_FAKE_GPU_CORRUPT", device)) out->fma_mismatches = 3;
    return 0;
}
