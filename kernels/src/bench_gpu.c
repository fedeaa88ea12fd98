/* CUDA/HIP throughput through the backend modules, loaded from next to this library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/backend_abi.h"
#include "internal.h"

typedef int (*abi_fn)(void);
typedef int (*count_fn)(char *, size_t);
typedef int (*bench_fn)(int, uint64_t, double, int, suanli_gpu_result *);

/* $SUANLI_BACKEND_DIR, else the directory this library was loaded from. */
static void module_path(const char *backend, char *out, size_t len) {
    const char *dir = getenv("SUANLI_BACKEND_DIR");
    char self[4096] = ".";
    Dl_info info;
    if (!dir || !*dir) {
        if (dladdr((void *)&suanli_bench_json, &info) && info.dli_fname) {
            snprintf(self, sizeof self, "%s", info.dli_fname);
            dir = dirname(self);
        } else {
            dir = ".";
        }
    }
    snprintf(out, len, "%s/libsuanli_%s.so", dir, backend);
}

static void write_result(json *j, int index, const suanli_gpu_result *r, const char *dtype) {
    int stream_ok = !r->error[0] && r->stream_mismatches == 0 && r->stream_reps > 0;
    int fma_ok = !r->error[0] && r->fma_mismatches == 0 && r->fma_reps > 0;
    char err[320] = "";
    if (r->error[0]) snprintf(err, sizeof err, "%s", r->error);
    else if (!stream_ok) snprintf(err, sizeof err, "stream verification failed: %llu wrong elements", (unsigned long long)r->stream_mismatches);
    else if (!fma_ok) snprintf(err, sizeof err, "fma verification failed: %llu wrong lanes", (unsigned long long)r->fma_mismatches);
    json_obj(j);
    json_key(j, "index"); json_int(j, index);
    json_key(j, "name"); json_str(j, r->name[0] ? r->name : NULL);
    json_key(j, "status"); json_str(j, err[0] ? "error" : "ok");
    json_key(j, "error"); json_str(j, err[0] ? err : NULL);
    json_key(j, "copy_gbs"); if (stream_ok) json_num(j, r->copy_gbs); else json_null(j);
    json_key(j, "triad_gbs"); if (stream_ok) json_num(j, r->triad_gbs); else json_null(j);
    json_key(j, "fma_gflops"); if (fma_ok) json_num(j, r->fma_gflops); else json_null(j);
    json_key(j, "fma_dtype"); json_str(j, dtype);
    json_key(j, "verified"); json_bool(j, stream_ok && fma_ok);
    json_key(j, "stream_mismatches"); json_int(j, (int64_t)r->stream_mismatches);
    json_key(j, "fma_mismatches"); json_int(j, (int64_t)r->fma_mismatches);
    json_key(j, "array_bytes"); json_int(j, (int64_t)r->array_bytes);
    json_key(j, "memory_total_bytes"); json_int(j, (int64_t)r->memory_bytes);
    json_key(j, "stream_reps"); json_int(j, r->stream_reps);
    json_key(j, "fma_reps"); json_int(j, r->fma_reps);
    json_end_obj(j);
}

void bench_gpu(json *j, const char *backend, const suanli_bench_options *o) {
    const char *label = strcmp(backend, "cuda") == 0 ? "CUDA" : "HIP";
    char path[4200], msg[600];
    module_path(backend, path, sizeof path);
    /* Never dlclose'd: GPU runtimes register exit handlers that must outlive the call. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(msg, sizeof msg, "%s backend not available: %s (built without it, or its runtime is missing)", label, dlerror());
        bench_fail(j, backend, msg);
        return;
    }
    abi_fn abi = (abi_fn)dlsym(h, "suanli_gpu_abi_version");
    count_fn count = (count_fn)dlsym(h, "suanli_gpu_device_count");
    bench_fn bench = (bench_fn)dlsym(h, "suanli_gpu_bench");
    if (!abi || !count || !bench || abi() != SUANLI_GPU_ABI_VERSION) {
        snprintf(msg, sizeof msg, "%s backend %s does not match this library (ABI %d); rebuild both together", label, path,
                 SUANLI_GPU_ABI_VERSION);
        bench_fail(j, backend, msg);
        return;
    }
    char err[256] = "";
    int n = count(err, sizeof err);
    if (n <= 0) {
        snprintf(msg, sizeof msg, "no usable %s device: %s", label, n < 0 ? err : "the runtime reports 0 devices");
        bench_fail(j, backend, msg);
        return;
    }
    if (o->device >= n) {
        snprintf(msg, sizeof msg, "device %d out of range: %d %s device(s); use --device 0..%d or -1 for all", o->device, n, label, n - 1);
        bench_fail(j, backend, msg);
        return;
    }
    int first = o->device >= 0 ? o->device : 0, last = o->device >= 0 ? o->device : n - 1;
    int count_dev = last - first + 1;
    suanli_gpu_result *res = calloc((size_t)count_dev, sizeof *res);
    if (!res) { bench_fail(j, backend, "out of memory"); return; }
    double budget = o->budget_s > 0 ? o->budget_s : 2.0;
    int failed = 0;
    double min_copy = -1, min_triad = -1, min_fma = -1;
    for (int d = first; d <= last; d++) {
        suanli_gpu_result *r = &res[d - first];
        bench(d, o->array_bytes, budget, o->inject_fault, r);
        int ok = !r->error[0] && r->stream_mismatches == 0 && r->fma_mismatches == 0 && r->stream_reps > 0 && r->fma_reps > 0;
        if (!ok) { failed++; continue; }
        if (min_copy < 0 || r->copy_gbs < min_copy) min_copy = r->copy_gbs;
        if (min_triad < 0 || r->triad_gbs < min_triad) min_triad = r->triad_gbs;
        if (min_fma < 0 || r->fma_gflops < min_fma) min_fma = r->fma_gflops;
    }
    bench_begin(j, backend);
    json_key(j, "status"); json_str(j, failed ? "error" : "ok");
    if (failed) snprintf(msg, sizeof msg, "%d of %d %s device(s) failed; see devices[].error", failed, count_dev, label);
    json_key(j, "error"); json_str(j, failed ? msg : NULL);
    /* Top level: the slowest verified device, since a gang runs at its slowest member's pace. */
    json_key(j, "copy_gbs"); if (min_copy >= 0) json_num(j, min_copy); else json_null(j);
    json_key(j, "triad_gbs"); if (min_triad >= 0) json_num(j, min_triad); else json_null(j);
    json_key(j, "fma_gflops"); if (min_fma >= 0) json_num(j, min_fma); else json_null(j);
    /* All the runtime lists, also when one was measured: a caller running one device per process
     * learns from it whether the runtime's numbering covers every card. */
    json_key(j, "device_count"); json_int(j, n);
    json_key(j, "devices");
    json_arr(j);
    for (int d = first; d <= last; d++) write_result(j, d, &res[d - first], "fp32");
    json_end_arr(j);
    json_end_obj(j);
    free(res);
}
