/* Bench entry point: one JSON shape for every backend, errors included. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifndef SUANLI_C_COMPILER
#define SUANLI_C_COMPILER "unknown"
#endif
#ifndef SUANLI_C_FLAGS
#define SUANLI_C_FLAGS ""
#endif
#ifndef SUANLI_BACKENDS
#define SUANLI_BACKENDS "cpu"
#endif

void bench_begin(json *j, const char *backend) {
    json_obj(j);
    json_key(j, "schema_version"); json_int(j, SUANLI_SCHEMA_VERSION);
    json_key(j, "kind"); json_str(j, "bench");
    json_key(j, "backend"); json_str(j, backend);
    /* Ascend has no compute-kernel copy here (no AscendC compiler): its copy figure is the DMA
     * engine's device-to-device copy bandwidth, a different quantity from a STREAM copy. */
    json_key(j, "copy_method"); json_str(j, strcmp(backend, "ascend") == 0 ? "dma" : "kernel");
    json_key(j, "versions");
    json_obj(j);
    json_key(j, "suanli"); json_str(j, suanli_version());
    json_end_obj(j);
}

static void bench_error(json *j, const char *backend, const char *msg) {
    bench_begin(j, backend);
    json_key(j, "status"); json_str(j, "error");
    json_key(j, "error"); json_str(j, msg);
    json_key(j, "copy_gbs"); json_null(j);
    json_key(j, "triad_gbs"); json_null(j);
    json_key(j, "fma_gflops"); json_null(j);
    json_key(j, "devices"); json_arr(j); json_end_arr(j);
    json_end_obj(j);
}

char *suanli_bench_json(const char *backend, const suanli_bench_options *options) {
    suanli_bench_options o;
    memset(&o, 0, sizeof o);
    o.device = -1;
    if (options) o = *options;
    json j;
    json_init(&j);
    if (!backend) backend = "cpu";
    if (o.budget_s < 0 || o.budget_s > 3600) {
        bench_error(&j, backend, "budget_s must be between 0 (default 2 s) and 3600 seconds");
    } else if (strcmp(backend, "cpu") == 0) {
        bench_cpu(&j, &o);
    } else if (strcmp(backend, "cuda") == 0 || strcmp(backend, "hip") == 0) {
        bench_gpu(&j, backend, &o);
    } else if (strcmp(backend, "ascend") == 0) {
        bench_ascend(&j, &o);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown backend '%.40s': use cpu, cuda, hip or ascend", backend);
        bench_error(&j, backend, msg);
    }
    return json_finish(&j);
}

void bench_fail(json *j, const char *backend, const char *msg) { bench_error(j, backend, msg); }

char *suanli_build_info_json(void) {
    json j;
    json_init(&j);
    json_obj(&j);
    json_key(&j, "version"); json_str(&j, suanli_version());
    json_key(&j, "c_compiler"); json_str(&j, SUANLI_C_COMPILER);
    json_key(&j, "c_flags"); json_str(&j, SUANLI_C_FLAGS);
    json_key(&j, "backends"); json_str(&j, SUANLI_BACKENDS);
    json_end_obj(&j);
    return json_finish(&j);
}
