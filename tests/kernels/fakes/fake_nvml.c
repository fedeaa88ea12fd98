/* Fake NVML (libnvidia-ml.so.1): an HGX board whose 18 NVLinks per GPU go to four NVSwitches. */
#include <stdint.h>

#include "fake_common.h"

typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct {
    char bus_id_legacy[16];
    unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci_info;

int nvmlInit_v2(void) {
#ifdef FAKE_INIT_FAILS
    return 9; /* NVML_ERROR_DRIVER_NOT_LOADED */
#else
    return 0;
#endif
}
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int rc) {
    return rc == 9 ? "Driver Not Loaded" : rc == 15 ? "GPU is lost" : rc == 999 ? "Unknown Error" : "error";
}
int nvmlSystemGetDriverVersion(char *v, unsigned len) { snprintf(v, len, "580.65.06"); return 0; }

int nvmlDeviceGetHandleByPciBusId_v2(const char *id, void **h) {
    unsigned d, b, v, f;
    if (sscanf(id, "%x:%x:%x.%x", &d, &b, &v, &f) != 4) return 2;
    if (fake_is("SUANLI_FAKE_FAIL_BDF", b, v, f)) return 15;
    *h = (void *)(uintptr_t)((b << 8) | (v << 3) | f | 0x10000);
    return 0;
}
int nvmlDeviceGetName(void *h, char *name, unsigned len) { (void)h; snprintf(name, len, "NVIDIA H100 80GB HBM3"); return 0; }
#ifndef FAKE_OMIT_REQUIRED
int nvmlDeviceGetMemoryInfo(void *h, nvml_memory *m) {
    (void)h;
    m->total = 80ull << 30;
    m->used = 1ull << 30;
    m->free = m->total - m->used;
    return 0;
}
#endif
int nvmlDeviceGetTotalEccErrors(void *h, int type, int counter, unsigned long long *n) {
    unsigned key = (unsigned)(uintptr_t)h;
    (void)type; (void)counter;
    *n = fake_is("SUANLI_FAKE_ECC_BDF", (key >> 8) & 0xff, (key >> 3) & 0x1f, key & 7) ? 3 : 0;
    return 0;
}
int nvmlDeviceGetNvLinkState(void *h, unsigned link, int *active) { (void)h; *active = link < 18; return 0; }
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void *h, unsigned link, nvml_pci_info *p) {
    (void)h;
    memset(p, 0, sizeof *p);
    p->domain = 0;
    p->bus = 0xd8;
    p->device = link % 4;
    snprintf(p->bus_id, sizeof p->bus_id, "00000000:D8:%02X.0", link % 4);
    return 0;
}
int nvmlDeviceGetNvLinkRemoteDeviceType(void *h, unsigned link, int *type) { (void)h; (void)link; *type = 2; return 0; }
