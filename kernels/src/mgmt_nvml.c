/* NVIDIA: NVML for memory, ECC health, driver version and NVLink peers. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* NVML ABI subset (nvml.h), declared here so the build needs no NVIDIA headers. */
typedef void *nvml_device;
typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct {
    char bus_id_legacy[16];
    unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci_info;
enum { NVML_SUCCESS = 0, NVML_NVLINK_MAX_LINKS = 18, NVML_NVLINK_DEVICE_TYPE_SWITCH = 2 };
enum { NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1, NVML_VOLATILE_ECC = 0 };

typedef int (*nvml_void_fn)(void);
typedef const char *(*nvml_errstr_fn)(int);
typedef int (*nvml_driver_fn)(char *, unsigned int);
typedef int (*nvml_by_bus_fn)(const char *, nvml_device *);
typedef int (*nvml_name_fn)(nvml_device, char *, unsigned int);
typedef int (*nvml_mem_fn)(nvml_device, nvml_memory *);
typedef int (*nvml_ecc_fn)(nvml_device, int, int, unsigned long long *);
typedef int (*nvml_link_state_fn)(nvml_device, unsigned int, int *);
typedef int (*nvml_link_pci_fn)(nvml_device, unsigned int, nvml_pci_info *);
typedef int (*nvml_link_type_fn)(nvml_device, unsigned int, int *);

static const char *const NAMES[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};
static const char *const DIRS[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu",
                                   "/usr/local/nvidia/lib64", NULL};

void mgmt_nvml(probe_state *st, const char *lib_path) {
    mgmt_report *r = &st->mgmt[VENDOR_NVIDIA];
    vendor_lib lib;
    if (!mgmt_open(st, VENDOR_NVIDIA, "nvml", &lib, lib_path, NAMES, DIRS,
                   "NVML (libnvidia-ml.so.1) not loadable; install the NVIDIA driver"))
        return;
    nvml_void_fn init = (nvml_void_fn)vendor_sym(&lib, "nvmlInit_v2");
    nvml_void_fn shutdown = (nvml_void_fn)vendor_sym(&lib, "nvmlShutdown");
    nvml_by_bus_fn by_bus = (nvml_by_bus_fn)vendor_sym(&lib, "nvmlDeviceGetHandleByPciBusId_v2");
    nvml_mem_fn mem = (nvml_mem_fn)vendor_sym(&lib, "nvmlDeviceGetMemoryInfo");
    if (!init || !shutdown || !by_bus || !mem) {
        mgmt_fail(st, VENDOR_NVIDIA, &lib, "%s", lib.error);
        return;
    }
    /* Optional: older drivers lack some; the probe reports what it can. */
    nvml_errstr_fn errstr = (nvml_errstr_fn)vendor_sym_opt(&lib, "nvmlErrorString");
    nvml_driver_fn driver = (nvml_driver_fn)vendor_sym_opt(&lib, "nvmlSystemGetDriverVersion");
    nvml_name_fn name = (nvml_name_fn)vendor_sym_opt(&lib, "nvmlDeviceGetName");
    nvml_ecc_fn ecc = (nvml_ecc_fn)vendor_sym_opt(&lib, "nvmlDeviceGetTotalEccErrors");
    nvml_link_state_fn link_state = (nvml_link_state_fn)vendor_sym_opt(&lib, "nvmlDeviceGetNvLinkState");
    nvml_link_pci_fn link_pci = (nvml_link_pci_fn)vendor_sym_opt(&lib, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
    nvml_link_type_fn link_type = (nvml_link_type_fn)vendor_sym_opt(&lib, "nvmlDeviceGetNvLinkRemoteDeviceType");

    int rc = init();
    if (rc != NVML_SUCCESS) {
        mgmt_fail(st, VENDOR_NVIDIA, &lib, "nvmlInit_v2 failed: %s (%d)", errstr ? errstr(rc) : "error", rc);
        return;
    }
    r->status = "ok";
    if (driver && driver(r->driver_version, sizeof r->driver_version) != NVML_SUCCESS) r->driver_version[0] = '\0';

    for (int i = 0; i < st->count; i++) {
        pci_device *d = &st->devices[i];
        if (d->vendor != VENDOR_NVIDIA) continue;
        nvml_device h = NULL;
        rc = by_bus(d->bdf, &h);
        if (rc != NVML_SUCCESS) {
            d->status = "error";
            d->health = "failed";
            snprintf(d->status_detail, sizeof d->status_detail, "nvmlDeviceGetHandleByPciBusId_v2: %s (%d)",
                     errstr ? errstr(rc) : "error", rc);
            continue;
        }
        d->status = "ok";
        d->health = "ok";
        if (name && name(h, d->mgmt_name, sizeof d->mgmt_name) != NVML_SUCCESS) d->mgmt_name[0] = '\0';
        nvml_memory m;
        rc = mem(h, &m);
        if (rc == NVML_SUCCESS) {
            d->mem_total_bytes = (int64_t)m.total;
            d->mem_used_bytes = (int64_t)m.used;
        } else {
            d->status = "error";
            d->health = "failed";
            snprintf(d->status_detail, sizeof d->status_detail, "nvmlDeviceGetMemoryInfo: %s (%d)",
                     errstr ? errstr(rc) : "error", rc);
            continue;
        }
        unsigned long long ue = 0;
        /* Volatile uncorrectable ECC errors since boot mean pages are being lost: not schedulable. */
        if (ecc && ecc(h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &ue) == NVML_SUCCESS && ue > 0) {
            d->health = "degraded";
            snprintf(d->status_detail, sizeof d->status_detail, "%llu uncorrectable ECC errors since boot", ue);
        }
        if (!link_state || !link_pci) continue;
        for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; l++) {
            int active = 0;
            if (link_state(h, l, &active) != NVML_SUCCESS || !active) continue;
            nvml_pci_info pi;
            memset(&pi, 0, sizeof pi);
            if (link_pci(h, l, &pi) != NVML_SUCCESS) continue;
            char peer[BDF_LEN];
            bdf_normalize(peer, pi.domain, pi.bus, pi.device, 0);
            pci_device *pd = pci_find(st, peer);
            int kind = -1;
            const char *peer_kind = pd ? "accelerator" : "unknown";
            if (!pd && link_type && link_type(h, l, &kind) == NVML_SUCCESS && kind == NVML_NVLINK_DEVICE_TYPE_SWITCH)
                peer_kind = "switch";
            device_add_link(d, "nvlink", peer, peer_kind);
        }
    }
    shutdown();
    vendor_lib_close(&lib);
}
