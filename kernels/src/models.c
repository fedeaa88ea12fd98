/*
 * PCI id -> accelerator model: data, so adding a card is one line.
 * verified=1: the id is in pci.ids (2023.04, Debian bookworm) or in vendor tooling
 * output quoted in public issue trackers; verified=0: believed correct, confirm on
 * hardware (kernels/README.md lists them).
 */
#include <stddef.h>

#include "internal.h"

static const device_model MODELS[] = {
    /* NVIDIA (10de) */
    {0x10de, 0x1db1, "V100 SXM2 16GB", "volta", 1},
    {0x10de, 0x1db5, "V100 SXM2 32GB", "volta", 1},
    {0x10de, 0x1eb8, "T4", "turing", 1},
    {0x10de, 0x20b0, "A100 SXM4 40GB", "ampere", 1},
    {0x10de, 0x20b2, "A100 SXM4 80GB", "ampere", 1},
    {0x10de, 0x20b5, "A100 PCIe 80GB", "ampere", 1},
    {0x10de, 0x20f1, "A100 PCIe 40GB", "ampere", 1},
    {0x10de, 0x20f3, "A800 SXM4 80GB", "ampere", 1},
    {0x10de, 0x20f5, "A800 PCIe 80GB", "ampere", 1},
    {0x10de, 0x20f6, "A800 PCIe 40GB", "ampere", 1},
    {0x10de, 0x20b7, "A30", "ampere", 1},
    {0x10de, 0x2236, "A10", "ampere", 1},
    {0x10de, 0x2322, "H800 PCIe", "hopper", 1},
    {0x10de, 0x2324, "H800 SXM5", "hopper", 1},
    {0x10de, 0x2330, "H100 SXM5 80GB", "hopper", 1},
    {0x10de, 0x2331, "H100 PCIe", "hopper", 1},
    {0x10de, 0x2321, "H100 NVL", "hopper", 0},
    {0x10de, 0x2329, "H20", "hopper", 0},
    {0x10de, 0x2335, "H200 SXM 141GB", "hopper", 0},
    {0x10de, 0x233b, "H200 NVL", "hopper", 0},
    {0x10de, 0x2342, "GH200", "hopper", 0},
    {0x10de, 0x26b5, "L40", "ada", 1},
    {0x10de, 0x26b9, "L40S", "ada", 0},
    {0x10de, 0x27b8, "L4", "ada", 1},
    {0x10de, 0x2901, "B200", "blackwell", 0},
    /* Huawei Ascend (19e5): ids as used by Ascend's own collection scripts (lspci | grep d80x). */
    {0x19e5, 0xd100, "Ascend 310", "ascend310", 1},
    {0x19e5, 0xd500, "Ascend 310P", "ascend310p", 1},
    {0x19e5, 0xd801, "Ascend 910", "ascend910", 1},
    {0x19e5, 0xd802, "Ascend 910B", "ascend910b", 1},
    {0x19e5, 0xd803, "Ascend 910C", "ascend910c", 0}, /* "910_93" in Ascend tooling */
    /* Hygon DCU (1d94): 6210 is K100_AI per rocm-smi output; Z100/Z100L/K100 ids are not
     * public in any source we could check, so those cards are reported by class as
     * "Hygon DCU (unknown 0xNNNN)" and named from ROCm SMI when it loads. */
    {0x1d94, 0x6210, "K100_AI", "hygon-dcu", 1},
};

const device_model *model_lookup(uint16_t vendor_id, uint16_t device_id) {
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (MODELS[i].vendor_id == vendor_id && MODELS[i].device_id == device_id) return &MODELS[i];
    return NULL;
}

typedef struct vendor_info {
    uint16_t id;
    vendor_kind kind;
    const char *name;
    /* Class codes (base<<8|sub) that mark an accelerator when the id is not in MODELS:
     * the same vendor ids also cover NICs, SSDs, NVSwitches and (Hygon) CPU bridges. */
    uint16_t classes[4];
} vendor_info;

static const vendor_info VENDORS[] = {
    {0x10de, VENDOR_NVIDIA, "nvidia", {0x0300, 0x0302, 0, 0}},
    {0x19e5, VENDOR_HUAWEI, "huawei", {0x1200, 0, 0, 0}},
    {0x1d94, VENDOR_HYGON, "hygon", {0x1200, 0x0380, 0x0b40, 0}},
};

int vendor_from_id(uint16_t vendor_id, vendor_kind *out) {
    for (size_t i = 0; i < sizeof VENDORS / sizeof VENDORS[0]; i++)
        if (VENDORS[i].id == vendor_id) { *out = VENDORS[i].kind; return 1; }
    return 0;
}

const char *vendor_name(vendor_kind v) {
    for (size_t i = 0; i < sizeof VENDORS / sizeof VENDORS[0]; i++)
        if (VENDORS[i].kind == v) return VENDORS[i].name;
    return "unknown";
}

int vendor_accepts_class(vendor_kind v, uint32_t class_code) {
    uint16_t cls = (uint16_t)(class_code >> 8);
    for (size_t i = 0; i < sizeof VENDORS / sizeof VENDORS[0]; i++)
        if (VENDORS[i].kind == v)
            for (int k = 0; k < 4 && VENDORS[i].classes[k]; k++)
                if (VENDORS[i].classes[k] == cls) return 1;
    return 0;
}
