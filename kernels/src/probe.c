/* The probe report: sysfs facts, vendor-library facts, and the topology derived from both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef SUANLI_VERSION
#define SUANLI_VERSION "0.0.0"
#endif

const char *suanli_version(void) { return SUANLI_VERSION; }
void suanli_free(char *json_text) { free(json_text); }

/* The switch a device hangs under: its parent is a downstream port, whose parent is the upstream port. */
static const char *nearest_switch(const pci_device *d) {
    return d->path_len >= 3 ? d->path[d->path_len - 2] : NULL;
}

static int uf_find(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

static void uf_join(int *parent, int a, int b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a != b) parent[b < a ? a : b] = b < a ? b : a;
}

static void write_device(json *j, const pci_device *d) {
    char hex[16];
    json_obj(j);
    json_key(j, "bdf"); json_str(j, d->bdf);
    json_key(j, "vendor"); json_str(j, vendor_name(d->vendor));
    snprintf(hex, sizeof hex, "0x%04x", d->vendor_id);
    json_key(j, "vendor_id"); json_str(j, hex);
    snprintf(hex, sizeof hex, "0x%04x", d->device_id);
    json_key(j, "device_id"); json_str(j, hex);
    snprintf(hex, sizeof hex, "0x%06x", d->class_code);
    json_key(j, "class"); json_str(j, hex);
    char unknown[64];
    snprintf(unknown, sizeof unknown, "unknown %s 0x%04x", vendor_name(d->vendor), d->device_id);
    json_key(j, "model"); json_str(j, d->model ? d->model->model : d->mgmt_name[0] ? d->mgmt_name : unknown);
    json_key(j, "family"); json_str(j, d->model ? d->model->family : NULL);
    json_key(j, "model_verified"); json_bool(j, d->model && d->model->verified);
    json_key(j, "management_name"); json_str(j, d->mgmt_name[0] ? d->mgmt_name : NULL);
    json_key(j, "numa_node"); json_int(j, d->numa_node);
    json_key(j, "root_complex"); json_str(j, d->root_complex[0] ? d->root_complex : NULL);
    json_key(j, "pcie_path");
    json_arr(j);
    for (int k = 0; k < d->path_len; k++) json_str(j, d->path[k]);
    json_end_arr(j);
    json_key(j, "pcie_switch"); json_str(j, nearest_switch(d));
    json_key(j, "memory_total_bytes");
    if (d->mem_total_bytes >= 0) json_int(j, d->mem_total_bytes); else json_null(j);
    json_key(j, "memory_used_bytes");
    if (d->mem_used_bytes >= 0) json_int(j, d->mem_used_bytes); else json_null(j);
    json_key(j, "health"); json_str(j, d->health);
    json_key(j, "status"); json_str(j, d->status);
    json_key(j, "status_detail"); json_str(j, d->status_detail[0] ? d->status_detail : NULL);
    json_key(j, "links");
    json_arr(j);
    for (int k = 0; k < d->link_count; k++) {
        json_obj(j);
        json_key(j, "type"); json_str(j, d->links[k].type);
        json_key(j, "peer"); json_str(j, d->links[k].peer);
        json_key(j, "peer_kind"); json_str(j, d->links[k].peer_kind);
        json_key(j, "count"); json_int(j, d->links[k].count);
        json_end_obj(j);
    }
    json_end_arr(j);
    json_end_obj(j);
}

static void write_topology(json *j, const probe_state *st) {
    json_key(j, "topology");
    json_obj(j);

    json_key(j, "numa_nodes");
    json_obj(j);
    for (int i = 0; i < st->count; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++) seen |= st->devices[k].numa_node == st->devices[i].numa_node;
        if (seen) continue;
        char key[16];
        snprintf(key, sizeof key, "%d", st->devices[i].numa_node);
        json_key(j, key);
        json_arr(j);
        for (int k = i; k < st->count; k++)
            if (st->devices[k].numa_node == st->devices[i].numa_node) json_str(j, st->devices[k].bdf);
        json_end_arr(j);
    }
    json_end_obj(j);

    json_key(j, "pcie_switches");
    json_arr(j);
    for (int i = 0; i < st->count; i++) {
        const char *sw = nearest_switch(&st->devices[i]);
        if (!sw) continue;
        int seen = 0;
        for (int k = 0; k < i; k++) {
            const char *o = nearest_switch(&st->devices[k]);
            seen |= o && strcmp(o, sw) == 0;
        }
        if (seen) continue;
        json_obj(j);
        json_key(j, "upstream_port"); json_str(j, sw);
        json_key(j, "root_complex"); json_str(j, st->devices[i].root_complex);
        json_key(j, "devices");
        json_arr(j);
        for (int k = i; k < st->count; k++) {
            const char *o = nearest_switch(&st->devices[k]);
            if (o && strcmp(o, sw) == 0) json_str(j, st->devices[k].bdf);
        }
        json_end_arr(j);
        json_end_obj(j);
    }
    json_end_arr(j);

    /* Link domains: accelerators joined by direct links or through a shared link switch
     * (NVSwitch); the scheduler packs a gang inside one. */
    int parent[MAX_DEVICES];
    for (int i = 0; i < st->count; i++) parent[i] = i;
    for (int i = 0; i < st->count; i++)
        for (int l = 0; l < st->devices[i].link_count; l++) {
            const device_link *ln = &st->devices[i].links[l];
            for (int k = 0; k < st->count; k++) {
                if (k == i) continue;
                if (strcmp(st->devices[k].bdf, ln->peer) == 0) { uf_join(parent, i, k); continue; }
                for (int m = 0; m < st->devices[k].link_count; m++)
                    if (strcmp(st->devices[k].links[m].peer, ln->peer) == 0 &&
                        strcmp(st->devices[k].links[m].type, ln->type) == 0)
                        uf_join(parent, i, k);
            }
        }
    json_key(j, "link_domains");
    json_arr(j);
    for (int i = 0; i < st->count; i++) {
        if (uf_find(parent, i) != i || st->devices[i].link_count == 0) continue;
        json_obj(j);
        json_key(j, "type"); json_str(j, st->devices[i].links[0].type);
        json_key(j, "devices");
        json_arr(j);
        for (int k = 0; k < st->count; k++)
            if (uf_find(parent, k) == i) json_str(j, st->devices[k].bdf);
        json_end_arr(j);
        json_end_obj(j);
    }
    json_end_arr(j);
    json_end_obj(j);
}

char *suanli_probe_json(const char *sysfs_root, const char *lib_path) {
    probe_state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    if (!sysfs_root || !*sysfs_root) sysfs_root = "/sys";
    if (pci_scan(st, sysfs_root) == 0) {
        mgmt_nvml(st, lib_path);
        mgmt_dcmi(st, lib_path);
        mgmt_rsmi(st, lib_path);
    }
    json j;
    json_init(&j);
    json_obj(&j);
    json_key(&j, "schema_version"); json_int(&j, SUANLI_SCHEMA_VERSION);
    json_key(&j, "kind"); json_str(&j, "probe");
    json_key(&j, "sysfs_root"); json_str(&j, sysfs_root);
    json_key(&j, "versions");
    json_obj(&j);
    json_key(&j, "suanli"); json_str(&j, SUANLI_VERSION);
    static const char *const driver_keys[VENDOR_COUNT] = {"nvidia_driver", "ascend_driver", "hygon_driver"};
    for (int v = 0; v < VENDOR_COUNT; v++) {
        json_key(&j, driver_keys[v]);
        json_str(&j, st->mgmt[v].driver_version[0] ? st->mgmt[v].driver_version : NULL);
    }
    json_end_obj(&j);
    json_key(&j, "devices");
    json_arr(&j);
    for (int i = 0; i < st->count; i++) write_device(&j, &st->devices[i]);
    json_end_arr(&j);
    write_topology(&j, st);
    json_key(&j, "management");
    json_arr(&j);
    for (int v = 0; v < VENDOR_COUNT; v++) {
        const mgmt_report *m = &st->mgmt[v];
        if (!m->name) continue;
        json_obj(&j);
        json_key(&j, "vendor"); json_str(&j, vendor_name((vendor_kind)v));
        json_key(&j, "library"); json_str(&j, m->name);
        json_key(&j, "status"); json_str(&j, m->status);
        json_key(&j, "path"); json_str(&j, m->path[0] ? m->path : NULL);
        json_key(&j, "detail"); json_str(&j, m->detail[0] ? m->detail : NULL);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_key(&j, "errors");
    json_arr(&j);
    for (int i = 0; i < st->error_count; i++) json_str(&j, st->errors[i]);
    json_end_arr(&j);
    json_end_obj(&j);
    free(st);
    return json_finish(&j);
}
