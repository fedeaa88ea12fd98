/*
 * Ascend NPU DMA copy bandwidth through the ACL runtime (libascendcl, loaded at run time).
 * Without an AscendC compiler there are no device kernels, so copy is measured as a
 * device-to-device aclrtMemcpy (the DMA engines, not the AI cores: copy_method "dma") and verified by copying the result back to the host;
 * triad and FMA are reported as unsupported rather than guessed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { ACL_SUCCESS = 0, ACL_ERROR_REPEAT_INITIALIZE = 100002 };
enum { ACL_MEMCPY_HOST_TO_DEVICE = 1, ACL_MEMCPY_DEVICE_TO_HOST = 2, ACL_MEMCPY_DEVICE_TO_DEVICE = 3 };
enum { ACL_MEM_MALLOC_HUGE_FIRST = 0 };

typedef int (*acl_init_fn)(const char *);
typedef int (*acl_void_fn)(void);
typedef int (*acl_count_fn)(uint32_t *);
typedef int (*acl_dev_fn)(int32_t);
typedef int (*acl_malloc_fn)(void **, size_t, int);
typedef int (*acl_free_fn)(void *);
typedef int (*acl_memcpy_fn)(void *, size_t, const void *, size_t, int);

static const char *const NAMES[] = {"libascendcl.so", NULL};
static const char *const DIRS[] = {"/usr/local/Ascend/ascend-toolkit/latest/lib64", "/usr/local/Ascend/nnrt/latest/lib64",
                                   "/usr/local/Ascend/latest/lib64", NULL};

typedef struct acl_api {
    acl_init_fn init;
    acl_void_fn finalize;
    acl_count_fn count;
    acl_dev_fn set_device, reset_device;
    acl_malloc_fn malloc_;
    acl_free_fn free_;
    acl_memcpy_fn memcpy_;
} acl_api;

typedef struct npu_result {
    double copy_gbs;
    uint64_t mismatches;
    int reps;
    char error[200];
} npu_result;

/* The pattern differs per element so a stuck or misrouted copy cannot pass. */
static uint64_t pattern(uint64_t i) { return (i + 1) * 0x9e3779b97f4a7c15ull; }

static void bench_npu(const acl_api *a, int dev, uint64_t bytes, double budget, int inject_fault, npu_result *r) {
    memset(r, 0, sizeof *r);
    int rc = a->set_device(dev);
    if (rc != ACL_SUCCESS) { snprintf(r->error, sizeof r->error, "aclrtSetDevice(%d): error %d", dev, rc); return; }
    uint64_t n = bytes / sizeof(uint64_t);
    bytes = n * sizeof(uint64_t);
    uint64_t *host = malloc(bytes);
    void *src = NULL, *dst = NULL;
    if (!host) { snprintf(r->error, sizeof r->error, "cannot allocate %llu host bytes", (unsigned long long)bytes); goto out; }
    if ((rc = a->malloc_(&src, bytes, ACL_MEM_MALLOC_HUGE_FIRST)) != ACL_SUCCESS ||
        (rc = a->malloc_(&dst, bytes, ACL_MEM_MALLOC_HUGE_FIRST)) != ACL_SUCCESS) {
        snprintf(r->error, sizeof r->error, "aclrtMalloc(%llu bytes): error %d; lower --array-mib", (unsigned long long)bytes, rc);
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) host[i] = pattern(i);
    if ((rc = a->memcpy_(src, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE)) != ACL_SUCCESS) {
        snprintf(r->error, sizeof r->error, "aclrtMemcpy host->device: error %d", rc);
        goto out;
    }
    double best = 1e30, start = now_s();
    int reps = 0;
    /* aclrtMemcpy is synchronous, so wall time around it is the copy time. */
    while (reps < 3 || (now_s() - start < budget && reps < 50)) {
        double t0 = now_s();
        rc = a->memcpy_(dst, bytes, src, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE);
        double dt = now_s() - t0;
        if (rc != ACL_SUCCESS) { snprintf(r->error, sizeof r->error, "aclrtMemcpy device->device: error %d", rc); goto out; }
        if (reps > 0 && dt < best) best = dt; /* first copy is warm-up */
        reps++;
    }
    memset(host, 0, bytes);
    if ((rc = a->memcpy_(host, bytes, dst, bytes, ACL_MEMCPY_DEVICE_TO_HOST)) != ACL_SUCCESS) {
        snprintf(r->error, sizeof r->error, "aclrtMemcpy device->host: error %d", rc);
        goto out;
    }
    if (inject_fault) host[n / 2] ^= 1;
    for (uint64_t i = 0; i < n; i++) r->mismatches += host[i] != pattern(i);
    r->reps = reps - 1;
    r->copy_gbs = 2.0 * (double)bytes / best / 1e9; /* read + write, as STREAM counts copy */
out:
    if (src) a->free_(src);
    if (dst) a->free_(dst);
    free(host);
    a->reset_device(dev);
}

void bench_ascend(json *j, const suanli_bench_options *o) {
    vendor_lib lib;
    char msg[700];
    if (!vendor_lib_open(&lib, o->lib_path, NAMES, DIRS)) {
        snprintf(msg, sizeof msg, "no usable Ascend device: ACL runtime not loadable (%s); install CANN or set SUANLI_VENDOR_LIB_PATH", lib.error);
        bench_fail(j, "ascend", msg);
        return;
    }
    acl_api a = {
        (acl_init_fn)vendor_sym(&lib, "aclInit"),
        (acl_void_fn)vendor_sym(&lib, "aclFinalize"),
        (acl_count_fn)vendor_sym(&lib, "aclrtGetDeviceCount"),
        (acl_dev_fn)vendor_sym(&lib, "aclrtSetDevice"),
        (acl_dev_fn)vendor_sym(&lib, "aclrtResetDevice"),
        (acl_malloc_fn)vendor_sym(&lib, "aclrtMalloc"),
        (acl_free_fn)vendor_sym(&lib, "aclrtFree"),
        (acl_memcpy_fn)vendor_sym(&lib, "aclrtMemcpy"),
    };
    if (!a.init || !a.finalize || !a.count || !a.set_device || !a.reset_device || !a.malloc_ || !a.free_ || !a.memcpy_) {
        snprintf(msg, sizeof msg, "ACL runtime unusable: %s", lib.error);
        bench_fail(j, "ascend", msg);
        vendor_lib_close(&lib);
        return;
    }
    int rc = a.init(NULL);
    uint32_t n = 0;
    if (rc != ACL_SUCCESS && rc != ACL_ERROR_REPEAT_INITIALIZE) {
        snprintf(msg, sizeof msg, "no usable Ascend device: aclInit failed with error %d", rc);
        bench_fail(j, "ascend", msg);
        vendor_lib_close(&lib);
        return;
    }
    if ((rc = a.count(&n)) != ACL_SUCCESS || n == 0 || o->device >= (int)n) {
        if (rc != ACL_SUCCESS) snprintf(msg, sizeof msg, "no usable Ascend device: aclrtGetDeviceCount error %d", rc);
        else if (n == 0) snprintf(msg, sizeof msg, "no usable Ascend device: the runtime reports 0 devices");
        else snprintf(msg, sizeof msg, "device %d out of range: %u Ascend device(s)", o->device, n);
        bench_fail(j, "ascend", msg);
        a.finalize();
        vendor_lib_close(&lib);
        return;
    }
    uint64_t bytes = o->array_bytes ? o->array_bytes : 1ull << 30; /* far beyond any NPU L2 */
    double budget = o->budget_s > 0 ? o->budget_s : 2.0;
    int first = o->device >= 0 ? o->device : 0, last = o->device >= 0 ? o->device : (int)n - 1;
    npu_result res[MAX_DEVICES];
    int failed = 0;
    double min_copy = -1;
    for (int d = first; d <= last && d - first < MAX_DEVICES; d++) {
        npu_result *r = &res[d - first];
        bench_npu(&a, d, bytes, budget, o->inject_fault, r);
        if (r->error[0] || r->mismatches) { failed++; continue; }
        if (min_copy < 0 || r->copy_gbs < min_copy) min_copy = r->copy_gbs;
    }
    a.finalize();
    vendor_lib_close(&lib);

    bench_begin(j, "ascend");
    json_key(j, "status"); json_str(j, failed ? "error" : "ok");
    snprintf(msg, sizeof msg, "%d Ascend device(s) failed; see devices[].error", failed);
    json_key(j, "error"); json_str(j, failed ? msg : NULL);
    json_key(j, "copy_gbs"); if (min_copy >= 0) json_num(j, min_copy); else json_null(j);
    json_key(j, "triad_gbs"); json_null(j);
    json_key(j, "fma_gflops"); json_null(j);
    json_key(j, "unsupported"); json_arr(j); json_str(j, "triad_gbs"); json_str(j, "fma_gflops"); json_end_arr(j);
    json_key(j, "device_count"); json_int(j, (int64_t)n);
    json_key(j, "devices");
    json_arr(j);
    for (int d = first; d <= last && d - first < MAX_DEVICES; d++) {
        npu_result *r = &res[d - first];
        char err[300] = "";
        if (r->error[0]) snprintf(err, sizeof err, "%s", r->error);
        else if (r->mismatches) snprintf(err, sizeof err, "copy verification failed: %llu wrong words", (unsigned long long)r->mismatches);
        json_obj(j);
        json_key(j, "index"); json_int(j, d);
        json_key(j, "name"); json_str(j, "ascend");
        json_key(j, "status"); json_str(j, err[0] ? "error" : "ok");
        json_key(j, "error"); json_str(j, err[0] ? err : NULL);
        json_key(j, "copy_gbs"); if (!err[0]) json_num(j, r->copy_gbs); else json_null(j);
        json_key(j, "triad_gbs"); json_null(j);
        json_key(j, "fma_gflops"); json_null(j);
        json_key(j, "verified"); json_bool(j, !err[0]);
        json_key(j, "stream_mismatches"); json_int(j, (int64_t)r->mismatches);
        json_key(j, "array_bytes"); json_int(j, (int64_t)(bytes / 8 * 8));
        json_key(j, "stream_reps"); json_int(j, r->reps);
        json_end_obj(j);
    }
    json_end_arr(j);
    json_end_obj(j);
}
