/* Fake ROCm SMI (librocm_smi64.so): eight DCUs in two xGMI groups of four. */
#include <stddef.h>
#include <stdint.h>

#include "fake_common.h"

static unsigned B[FAKE_MAX], D[FAKE_MAX], F[FAKE_MAX];
static int N;

int rsmi_init(uint64_t flags) {
    (void)flags;
#ifdef FAKE_INIT_FAILS
    return 8; /* RSMI_STATUS_INIT_ERROR */
#else
    N = fake_bdfs(B, D, F);
    return 0;
#endif
}
int rsmi_shut_down(void) { return 0; }
int rsmi_status_string(int rc, const char **s) { *s = rc == 8 ? "RSMI_STATUS_INIT_ERROR" : "RSMI_STATUS_UNKNOWN_ERROR"; return 0; }
int rsmi_num_monitor_devices(uint32_t *n) { *n = (uint32_t)N; return 0; }
#ifndef FAKE_OMIT_REQUIRED
int rsmi_dev_pci_id_get(uint32_t i, uint64_t *id) {
    if ((int)i >= N) return 2;
    *id = ((uint64_t)B[i] << 8) | (D[i] << 3) | F[i];
    return 0;
}
#endif
int rsmi_dev_memory_total_get(uint32_t i, int type, uint64_t *total) {
    (void)type;
    if (fake_is("SUANLI_FAKE_FAIL_BDF", B[i], D[i], F[i])) return 1;
    *total = 64ull << 30;
    return 0;
}
int rsmi_dev_memory_usage_get(uint32_t i, int type, uint64_t *used) { (void)i; (void)type; *used = 2ull << 20; return 0; }
int rsmi_dev_name_get(uint32_t i, char *name, size_t len) { (void)i; snprintf(name, len, "K100_AI"); return 0; }
int rsmi_version_str_get(int comp, char *v, uint32_t len) { (void)comp; snprintf(v, len, "6.3.28"); return 0; }
int rsmi_topo_get_link_type(uint32_t a, uint32_t b, uint64_t *hops, int *type) {
    *hops = 1;
    *type = a / 4 == b / 4 ? 2 : 1; /* XGMI within a group, PCIe across */
    return 0;
}
