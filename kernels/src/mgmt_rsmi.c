/* Hygon DCU: ROCm SMI (Hygon ships it as hyhal's librocm_smi64) for memory, driver and xGMI peers. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ROCm SMI ABI subset (rocm_smi.h). */
enum { RSMI_STATUS_SUCCESS = 0, RSMI_MEM_TYPE_VRAM = 0, RSMI_SW_COMP_DRIVER = 0, RSMI_IOLINK_TYPE_XGMI = 2 };
typedef int (*rsmi_init_fn)(uint64_t);
typedef int (*rsmi_void_fn)(void);
typedef int (*rsmi_num_fn)(uint32_t *);
typedef int (*rsmi_pci_fn)(uint32_t, uint64_t *);
typedef int (*rsmi_mem_fn)(uint32_t, int, uint64_t *);
typedef int (*rsmi_ver_fn)(int, char *, uint32_t);
typedef int (*rsmi_name_fn)(uint32_t, char *, size_t);
typedef int (*rsmi_link_fn)(uint32_t, uint32_t, uint64_t *, int *);
typedef int (*rsmi_errstr_fn)(int, const char **);

static const char *const NAMES[] = {"librocm_smi64.so.1", "librocm_smi64.so", "librocm_smi64.so.5",
                                    "librocm_smi64.so.6", NULL};
/* /opt/hyhal is where Hygon's driver package puts its ROCm SMI fork. */
static const char *const DIRS[] = {"/opt/hyhal/lib", "/opt/dtk/lib", "/opt/rocm/lib", NULL};

static const char *errtext(rsmi_errstr_fn f, int rc) {
    const char *s = NULL;
    if (f && f(rc, &s) == RSMI_STATUS_SUCCESS && s) return s;
    return "error";
}

void mgmt_rsmi(probe_state *st, const char *lib_path) {
    mgmt_report *r = &st->mgmt[VENDOR_HYGON];
    vendor_lib lib;
    if (!mgmt_open(st, VENDOR_HYGON, "rocm_smi", &lib, lib_path, NAMES, DIRS,
                   "ROCm SMI (librocm_smi64.so) not loadable; install hyhal/DTK"))
        return;
    rsmi_init_fn init = (rsmi_init_fn)vendor_sym(&lib, "rsmi_init");
    rsmi_void_fn shut = (rsmi_void_fn)vendor_sym(&lib, "rsmi_shut_down");
    rsmi_num_fn num = (rsmi_num_fn)vendor_sym(&lib, "rsmi_num_monitor_devices");
    rsmi_pci_fn pci = (rsmi_pci_fn)vendor_sym(&lib, "rsmi_dev_pci_id_get");
    if (!init || !shut || !num || !pci) {
        mgmt_fail(st, VENDOR_HYGON, &lib, "%s", lib.error);
        return;
    }
    rsmi_mem_fn mem_total = (rsmi_mem_fn)vendor_sym_opt(&lib, "rsmi_dev_memory_total_get");
    rsmi_mem_fn mem_used = (rsmi_mem_fn)vendor_sym_opt(&lib, "rsmi_dev_memory_usage_get");
    rsmi_ver_fn ver = (rsmi_ver_fn)vendor_sym_opt(&lib, "rsmi_version_str_get");
    rsmi_name_fn name = (rsmi_name_fn)vendor_sym_opt(&lib, "rsmi_dev_name_get");
    rsmi_link_fn link = (rsmi_link_fn)vendor_sym_opt(&lib, "rsmi_topo_get_link_type");
    rsmi_errstr_fn errstr = (rsmi_errstr_fn)vendor_sym_opt(&lib, "rsmi_status_string");

    int rc = init(0);
    uint32_t n = 0;
    if (rc == RSMI_STATUS_SUCCESS) rc = num(&n);
    if (rc != RSMI_STATUS_SUCCESS) {
        mgmt_fail(st, VENDOR_HYGON, &lib, "rsmi_init/rsmi_num_monitor_devices failed: %s (%d)", errtext(errstr, rc), rc);
        return;
    }
    r->status = "ok";
    if (ver && ver(RSMI_SW_COMP_DRIVER, r->driver_version, sizeof r->driver_version) != RSMI_STATUS_SUCCESS)
        r->driver_version[0] = '\0';
    mgmt_mark(st, VENDOR_HYGON, "error", "not reported by ROCm SMI: the driver does not see this DCU");

    pci_device *by_index[MAX_DEVICES] = {0};
    if (n > MAX_DEVICES) n = MAX_DEVICES;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = 0;
        rc = pci(i, &id);
        if (rc != RSMI_STATUS_SUCCESS) {
            probe_error(st, "rsmi_dev_pci_id_get(%u): %s (%d)", i, errtext(errstr, rc), rc);
            continue;
        }
        /* BDFID = domain << 32 | bus << 8 | device << 3 | function */
        char bdf[BDF_LEN];
        bdf_normalize(bdf, (unsigned)(id >> 32), (unsigned)(id >> 8) & 0xff, (unsigned)(id >> 3) & 0x1f, (unsigned)id & 0x7);
        pci_device *d = pci_find(st, bdf);
        if (!d) {
            probe_error(st, "ROCm SMI reports device %s that sysfs does not show", bdf);
            continue;
        }
        by_index[i] = d;
        d->status = "ok";
        d->health = "ok";
        d->status_detail[0] = '\0';
        if (name && name(i, d->mgmt_name, sizeof d->mgmt_name) != RSMI_STATUS_SUCCESS) d->mgmt_name[0] = '\0';
        uint64_t total = 0, used = 0;
        if (mem_total) {
            rc = mem_total(i, RSMI_MEM_TYPE_VRAM, &total);
            if (rc != RSMI_STATUS_SUCCESS) {
                d->status = "error";
                d->health = "failed";
                snprintf(d->status_detail, sizeof d->status_detail, "rsmi_dev_memory_total_get: %s (%d)",
                         errtext(errstr, rc), rc);
                continue;
            }
            d->mem_total_bytes = (int64_t)total;
        }
        if (mem_used && mem_used(i, RSMI_MEM_TYPE_VRAM, &used) == RSMI_STATUS_SUCCESS) d->mem_used_bytes = (int64_t)used;
    }
    if (link)
        for (uint32_t a = 0; a < n; a++)
            for (uint32_t b = 0; b < n; b++) {
                uint64_t hops = 0;
                int type = 0;
                if (a == b || !by_index[a] || !by_index[b]) continue;
                if (link(a, b, &hops, &type) == RSMI_STATUS_SUCCESS && type == RSMI_IOLINK_TYPE_XGMI && hops == 1)
                    device_add_link(by_index[a], "xgmi", by_index[b]->bdf, "accelerator");
            }
    shut();
    vendor_lib_close(&lib);
}
