/* Shared internals of libsuanli_kernels: JSON writer, vendor library loading, probe records. */
#ifndef SUANLI_INTERNAL_H
#define SUANLI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "suanli/kernels.h"

/* ---- JSON writer: a growable buffer with comma bookkeeping per nesting level. ---- */

#define JSON_MAX_DEPTH 32

typedef struct json {
    char *buf;
    size_t len, cap;
    int depth;
    int need_comma[JSON_MAX_DEPTH];
    int after_key;
    int failed; /* out of memory or nesting too deep: json_finish returns NULL */
} json;

void json_init(json *j);
void json_obj(json *j);
void json_end_obj(json *j);
void json_arr(json *j);
void json_end_arr(json *j);
void json_key(json *j, const char *key);
void json_str(json *j, const char *s); /* NULL writes null */
void json_int(json *j, int64_t v);
void json_num(json *j, double v); /* non-finite writes null */
void json_bool(json *j, int v);
void json_null(json *j);
char *json_finish(json *j); /* hands the buffer to the caller */

/* ---- Vendor libraries, loaded at run time so the core runs on any node. ---- */

typedef struct vendor_lib {
    void *handle;
    char path[512];   /* the file that loaded, or the names tried */
    char error[512];  /* why it did not load; empty when loaded */
    int broken;       /* a candidate file exists but would not load (wrong arch, corrupt, missing deps) */
} vendor_lib;

/*
 * Loads the first of `names` found. With lib_path (or $SUANLI_VENDOR_LIB_PATH) set,
 * only those directories are searched, so tests and operators get exactly the
 * library they point at; otherwise the dynamic loader's path, then `default_dirs`.
 */
int vendor_lib_open(vendor_lib *lib, const char *lib_path, const char *const *names,
                    const char *const *default_dirs);
void vendor_lib_close(vendor_lib *lib);
/* Resolves a symbol; on failure records "missing symbol NAME" in lib->error. */
void *vendor_sym(vendor_lib *lib, const char *name);
/* Resolves an optional symbol: NULL when absent, lib->error untouched. */
void *vendor_sym_opt(vendor_lib *lib, const char *name);

/* ---- Probe records. ---- */

#define MAX_DEVICES 64
#define MAX_PATH_DEPTH 12
#define MAX_LINKS 32
#define BDF_LEN 16

typedef enum vendor_kind { VENDOR_NVIDIA, VENDOR_HUAWEI, VENDOR_HYGON, VENDOR_COUNT } vendor_kind;

typedef struct device_model {
    uint16_t vendor_id;
    uint16_t device_id;
    const char *model;
    const char *family;
    int verified; /* 1: id checked against pci.ids or vendor tooling output; 0: believed, unconfirmed */
} device_model;

typedef struct device_link {
    char peer[BDF_LEN];   /* peer accelerator or switch BDF */
    const char *type;     /* "nvlink", "hccs", "xgmi" */
    const char *peer_kind;/* "accelerator", "switch", "unknown" */
    int count;            /* parallel links to this peer */
} device_link;

typedef struct pci_device {
    char bdf[BDF_LEN];
    vendor_kind vendor;
    uint16_t vendor_id, device_id;
    uint32_t class_code;
    const device_model *model; /* NULL when the id is not in the table */
    char mgmt_name[96];        /* name reported by the management library */
    int numa_node;             /* -1: unknown or single-node */
    char root_complex[32];     /* "pci0000:17" */
    char path[MAX_PATH_DEPTH][BDF_LEN]; /* bridges from the root port down, device excluded */
    int path_len;
    int64_t mem_total_bytes, mem_used_bytes; /* -1: unknown */
    const char *health;  /* "ok", "degraded", "failed", "unknown" */
    const char *status;  /* "ok", "no_management_library", "error" */
    char status_detail[256];
    device_link links[MAX_LINKS];
    int link_count;
} pci_device;

typedef struct mgmt_report {
    const char *name;      /* "nvml", "dcmi", "rocm_smi" */
    const char *status;    /* "ok", "missing", "error", "not_needed" */
    char path[512];
    char detail[512];
    char driver_version[96];
} mgmt_report;

typedef struct probe_state {
    pci_device devices[MAX_DEVICES];
    int count;
    int truncated;
    char errors[8][256];
    int error_count;
    mgmt_report mgmt[VENDOR_COUNT];
} probe_state;

void probe_error(probe_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Model table lookups (models.c). */
const device_model *model_lookup(uint16_t vendor_id, uint16_t device_id);
int vendor_from_id(uint16_t vendor_id, vendor_kind *out);
const char *vendor_name(vendor_kind v);
/* Whether a device of this vendor with this class code and no table entry counts as an accelerator. */
int vendor_accepts_class(vendor_kind v, uint32_t class_code);

/* sysfs scan (pci.c). */
int pci_scan(probe_state *st, const char *sysfs_root);
pci_device *pci_find(probe_state *st, const char *bdf); /* accepts 4- or 8-digit domains, any case */
void bdf_normalize(char out[BDF_LEN], unsigned domain, unsigned bus, unsigned dev, unsigned fn);
void device_add_link(pci_device *d, const char *type, const char *peer, const char *peer_kind);

/* Shared by the management-library loaders (mgmt.c). mgmt_open fills mgmt[v] and returns 1 with `lib` open, or
   0 when the vendor has no devices or its library cannot be opened (devices marked with why, or missing_hint);
   mgmt_fail reports an error for the vendor and its devices and closes `lib`. */
void mgmt_mark(probe_state *st, vendor_kind v, const char *status, const char *detail);
int mgmt_open(probe_state *st, vendor_kind v, const char *report_name, vendor_lib *lib, const char *lib_path,
              const char *const *names, const char *const *dirs, const char *missing_hint);
void mgmt_fail(probe_state *st, vendor_kind v, vendor_lib *lib, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Management libraries (mgmt_*.c): fill mgmt[vendor] and the vendor's devices. */
void mgmt_nvml(probe_state *st, const char *lib_path);
void mgmt_dcmi(probe_state *st, const char *lib_path);
void mgmt_rsmi(probe_state *st, const char *lib_path);

/* Benchmarks (bench_*.c): each writes one complete bench report. */
void bench_cpu(json *j, const suanli_bench_options *o);
void bench_gpu(json *j, const char *backend, const suanli_bench_options *o);
void bench_ascend(json *j, const suanli_bench_options *o);
/* Common header/footer of a bench report. */
void bench_begin(json *j, const char *backend);
/* A complete error report (status "error", null results). */
void bench_fail(json *j, const char *backend, const char *msg);
double now_s(void);

#endif
