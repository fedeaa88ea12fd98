/* Fake DCMI (libdcmi.so): one NPU per card, full-mesh HCCS as on an Atlas 800T A2. */
#include "fake_common.h"

struct dcmi_pcie_info_all {
    unsigned int venderid, subvenderid, deviceid, subdeviceid;
    int domain;
    unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
    unsigned char reserve[32];
};
struct dcmi_hbm_info {
    unsigned long long memory_size;
    unsigned int freq;
    unsigned long long memory_usage;
    int temp;
    unsigned int bandwith_util_rate;
};

static unsigned B[FAKE_MAX], D[FAKE_MAX], F[FAKE_MAX];
static int N;

int dcmi_init(void) {
#ifdef FAKE_INIT_FAILS
    return -8020;
#else
    N = fake_bdfs(B, D, F);
    return 0;
#endif
}
int dcmi_get_card_list(int *num, int *list, int len) {
    *num = N < len ? N : len;
    for (int i = 0; i < *num; i++) list[i] = i;
    return 0;
}
int dcmi_get_device_num_in_card(int card, int *n) { *n = card >= 0 && card < N; return 0; }
#ifndef FAKE_OMIT_REQUIRED
int dcmi_get_device_pcie_info(int card, int dev, struct dcmi_pcie_info_all *p) {
    if (card < 0 || card >= N || dev != 0) return -8007;
    memset(p, 0, sizeof *p);
    p->venderid = 0x19e5;
    p->deviceid = 0xd802;
    p->bdf_busid = B[card];
    p->bdf_deviceid = D[card];
    p->bdf_funcid = F[card];
    return 0;
}
#endif
int dcmi_get_device_health(int card, int dev, unsigned *health) {
    (void)dev;
    if (fake_is("SUANLI_FAKE_FAIL_BDF", B[card], D[card], F[card])) return -8005;
    *health = fake_is("SUANLI_FAKE_ALARM_BDF", B[card], D[card], F[card]) ? 2 : 0;
    return 0;
}
int dcmi_get_device_hbm_info(int card, int dev, struct dcmi_hbm_info *h) {
    (void)card; (void)dev;
    memset(h, 0, sizeof *h);
    h->memory_size = 65536;
    h->memory_usage = 3000;
    return 0;
}
int dcmi_get_driver_version(char *v, unsigned len) { snprintf(v, len, "24.1.rc2"); return 0; }
int dcmi_get_topo_info_by_device_id(int c1, int d1, int c2, int d2, int *type) {
    (void)d1; (void)d2;
    *type = c1 == c2 ? 0 : 3; /* SELF or HCCS */
    return 0;
}
