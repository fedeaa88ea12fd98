/*
 * Suanli device probe and throughput kernels: the public C ABI.
 *
 * Every entry point returns a JSON document (schema: kernels/probe.schema.json)
 * allocated with malloc; release it with suanli_free(). JSON rather than structs
 * keeps the ABI stable while the report grows, and lets the Python binding, the
 * CLI and the node agent share one parser-free contract.
 */
#ifndef SUANLI_KERNELS_H
#define SUANLI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SUANLI_API __attribute__((visibility("default")))
#define SUANLI_SCHEMA_VERSION 1

/* Knobs for one throughput run. Zero means "pick the documented default". */
typedef struct suanli_bench_options {
    double budget_s;          /* wall-clock budget per measurement (stream, fma); default 2 s */
    int32_t device;           /* accelerator index; -1 = every device */
    int32_t threads;          /* CPU threads; 0 = OpenMP's default (all online CPUs) */
    uint64_t array_bytes;     /* bytes per stream array; 0 = STREAM rule (>= 4x last-level cache) */
    const char *lib_path;     /* colon-separated dirs for vendor runtimes (Ascend ACL); NULL = env/defaults */
    int32_t inject_fault;     /* self-test only: corrupt one result element so verification must fail */
} suanli_bench_options;

/* Result of the CPU stream kernels on caller-chosen sizes; used by tests to check the kernels. */
typedef struct suanli_stream_result {
    double copy_gbs;
    double triad_gbs;
    double checksum;          /* sum of a[] + b[] + c[] after the run, for independent cross-checks */
    uint64_t mismatches;      /* elements that differ from the exact expected values */
    int32_t reps;             /* timed repetitions actually run (best-of) */
    int32_t threads;
} suanli_stream_result;

/* Library version ("0.1.0"); static storage, do not free. */
SUANLI_API const char *suanli_version(void);

/*
 * Scans PCI devices under <sysfs_root>/bus/pci/devices for NVIDIA, Huawei and Hygon
 * accelerators and enriches them from the vendor management libraries (NVML, DCMI,
 * ROCm SMI) when those load. lib_path: colon-separated directories searched instead
 * of the system defaults (NULL: $SUANLI_VENDOR_LIB_PATH, else system defaults).
 */
SUANLI_API char *suanli_probe_json(const char *sysfs_root, const char *lib_path);

/* Runs the throughput kernels on backend "cpu", "cuda", "hip" or "ascend". */
SUANLI_API char *suanli_bench_json(const char *backend, const suanli_bench_options *options);

/* Compiler, flags and backends this library was built with. */
SUANLI_API char *suanli_build_info_json(void);

/*
 * Runs copy and triad over n doubles per array, `reps` timed repetitions (best-of),
 * and verifies every element exactly. Returns 0, or -1 when the arrays cannot be
 * allocated. reps is clamped to [2, 40] so the expected values stay exact.
 */
SUANLI_API int suanli_cpu_stream(uint64_t n, int32_t reps, int32_t threads, int32_t inject_fault,
                                 suanli_stream_result *out);

SUANLI_API void suanli_free(char *json);

#ifdef __cplusplus
}
#endif

#endif
