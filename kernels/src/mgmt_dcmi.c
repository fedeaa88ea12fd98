/* Huawei Ascend: DCMI for HBM, health, driver version and HCCS topology. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* DCMI ABI subset (dcmi_interface_api.h). */
struct dcmi_pcie_info_all {
    unsigned int venderid, subvenderid, deviceid, subdeviceid;
    int domain;
    unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
    unsigned char reserve[32];
};
struct dcmi_hbm_info {
    unsigned long long memory_size; /* MB */
    unsigned int freq;
    unsigned long long memory_usage; /* MB */
    int temp;
    unsigned int bandwith_util_rate;
};
enum { DCMI_TOPO_TYPE_HCCS = 3, DCMI_TOPO_TYPE_HCCS_SW = 7 };

typedef int (*dcmi_init_fn)(void);
typedef int (*dcmi_list_fn)(int *, int *, int);
typedef int (*dcmi_count_fn)(int, int *);
typedef int (*dcmi_pcie_fn)(int, int, struct dcmi_pcie_info_all *);
typedef int (*dcmi_health_fn)(int, int, unsigned int *);
typedef int (*dcmi_hbm_fn)(int, int, struct dcmi_hbm_info *);
typedef int (*dcmi_driver_fn)(char *, unsigned int);
typedef int (*dcmi_topo_fn)(int, int, int, int, int *);

static const char *const NAMES[] = {"libdcmi.so", NULL};
static const char *const DIRS[] = {"/usr/local/dcmi", "/usr/local/Ascend/driver/lib64/driver",
                                   "/usr/local/Ascend/driver/lib64", NULL};

typedef struct npu { int card, dev; pci_device *pci; } npu;

void mgmt_dcmi(probe_state *st, const char *lib_path) {
    mgmt_report *r = &st->mgmt[VENDOR_HUAWEI];
    vendor_lib lib;
    if (!mgmt_open(st, VENDOR_HUAWEI, "dcmi", &lib, lib_path, NAMES, DIRS,
                   "DCMI (libdcmi.so) not loadable; install the Ascend driver"))
        return;
    dcmi_init_fn init = (dcmi_init_fn)vendor_sym(&lib, "dcmi_init");
    dcmi_list_fn list = (dcmi_list_fn)vendor_sym_opt(&lib, "dcmi_get_card_list");
    if (!list) list = (dcmi_list_fn)vendor_sym(&lib, "dcmi_get_card_num_list"); /* DCMI v1 name */
    dcmi_count_fn count = (dcmi_count_fn)vendor_sym(&lib, "dcmi_get_device_num_in_card");
    dcmi_pcie_fn pcie = (dcmi_pcie_fn)vendor_sym(&lib, "dcmi_get_device_pcie_info");
    dcmi_health_fn health = (dcmi_health_fn)vendor_sym(&lib, "dcmi_get_device_health");
    if (!init || !list || !count || !pcie || !health) {
        mgmt_fail(st, VENDOR_HUAWEI, &lib, "%s", lib.error);
        return;
    }
    dcmi_hbm_fn hbm = (dcmi_hbm_fn)vendor_sym_opt(&lib, "dcmi_get_device_hbm_info");
    dcmi_driver_fn driver = (dcmi_driver_fn)vendor_sym_opt(&lib, "dcmi_get_driver_version");
    dcmi_topo_fn topo = (dcmi_topo_fn)vendor_sym_opt(&lib, "dcmi_get_topo_info_by_device_id");

    int rc = init();
    if (rc != 0) {
        mgmt_fail(st, VENDOR_HUAWEI, &lib, "dcmi_init failed: error %d", rc);
        return;
    }
    int cards[MAX_DEVICES], ncards = 0;
    rc = list(&ncards, cards, MAX_DEVICES);
    if (rc != 0 || ncards < 0 || ncards > MAX_DEVICES) {
        mgmt_fail(st, VENDOR_HUAWEI, &lib, "dcmi_get_card_list failed: error %d", rc);
        return;
    }
    r->status = "ok";
    if (driver && driver(r->driver_version, sizeof r->driver_version) != 0) r->driver_version[0] = '\0';
    mgmt_mark(st, VENDOR_HUAWEI, "error", "not reported by DCMI: the driver does not see this NPU");

    npu npus[MAX_DEVICES];
    int n = 0;
    for (int c = 0; c < ncards; c++) {
        int ndev = 0;
        if (count(cards[c], &ndev) != 0) {
            probe_error(st, "dcmi_get_device_num_in_card(card %d) failed", cards[c]);
            continue;
        }
        for (int dv = 0; dv < ndev && n < MAX_DEVICES; dv++) {
            struct dcmi_pcie_info_all pi;
            memset(&pi, 0, sizeof pi);
            rc = pcie(cards[c], dv, &pi);
            if (rc != 0) {
                probe_error(st, "dcmi_get_device_pcie_info(card %d, device %d): error %d", cards[c], dv, rc);
                continue;
            }
            char bdf[BDF_LEN];
            bdf_normalize(bdf, (unsigned)pi.domain, pi.bdf_busid, pi.bdf_deviceid, pi.bdf_funcid);
            pci_device *d = pci_find(st, bdf);
            if (!d) {
                probe_error(st, "DCMI reports NPU %s (card %d) that sysfs does not show", bdf, cards[c]);
                continue;
            }
            npus[n++] = (npu){cards[c], dv, d};
            unsigned int hv = 0;
            rc = health(cards[c], dv, &hv);
            if (rc != 0) {
                d->status = "error";
                d->health = "failed";
                snprintf(d->status_detail, sizeof d->status_detail, "dcmi_get_device_health: error %d", rc);
                continue;
            }
            d->status = "ok";
            d->status_detail[0] = '\0';
            /* DCMI health: 0 normal, 1 minor alarm, 2 major alarm, 3 critical alarm. */
            d->health = hv == 0 ? "ok" : hv == 1 ? "degraded" : hv <= 3 ? "failed" : "unknown";
            if (hv) snprintf(d->status_detail, sizeof d->status_detail, "DCMI health %u", hv);
            struct dcmi_hbm_info hi;
            memset(&hi, 0, sizeof hi);
            if (hbm && hbm(cards[c], dv, &hi) == 0) {
                d->mem_total_bytes = (int64_t)(hi.memory_size * 1024ULL * 1024ULL);
                d->mem_used_bytes = (int64_t)(hi.memory_usage * 1024ULL * 1024ULL);
            }
        }
    }
    if (topo)
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                int t = -1;
                if (a == b || topo(npus[a].card, npus[a].dev, npus[b].card, npus[b].dev, &t) != 0) continue;
                if (t == DCMI_TOPO_TYPE_HCCS || t == DCMI_TOPO_TYPE_HCCS_SW)
                    device_add_link(npus[a].pci, "hccs", npus[b].pci->bdf, "accelerator");
            }
    vendor_lib_close(&lib);
}
