/* sysfs PCI scan: the probe's ground truth, independent of any vendor library. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void probe_error(probe_state *st, const char *fmt, ...) {
    if (st->error_count >= (int)(sizeof st->errors / sizeof st->errors[0])) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->errors[st->error_count++], sizeof st->errors[0], fmt, ap);
    va_end(ap);
}

/* The first line of dir/file (sysfs attributes are one short line). */
static int read_line(const char *dir, const char *file, char *buf, int size) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(buf, size, f) != NULL;
    fclose(f);
    return ok;
}

static int read_hex(const char *dir, const char *file, unsigned long *out) {
    char buf[64], *end;
    if (!read_line(dir, file, buf, sizeof buf)) return 0;
    errno = 0;
    *out = strtoul(buf, &end, 0);
    return errno == 0 && end != buf;
}

static int read_int(const char *dir, const char *file, long *out) {
    char buf[64], *end;
    if (!read_line(dir, file, buf, sizeof buf)) return 0;
    *out = strtol(buf, &end, 10);
    return end != buf;
}

/* "0000:1b:00.0" shape: what PCI functions look like among sysfs path components. */
static int is_bdf(const char *s) {
    unsigned d, b, dv, fn;
    char tail;
    return strlen(s) < BDF_LEN && sscanf(s, "%4x:%2x:%2x.%1x%c", &d, &b, &dv, &fn, &tail) == 4;
}

void bdf_normalize(char out[BDF_LEN], unsigned domain, unsigned bus, unsigned dev, unsigned fn) {
    snprintf(out, BDF_LEN, "%04x:%02x:%02x.%x", domain & 0xffff, bus & 0xff, dev & 0x1f, fn & 0x7);
}

pci_device *pci_find(probe_state *st, const char *bdf) {
    unsigned d, b, dv, fn;
    /* NVML writes 8-digit domains ("00000000:1B:00.0"); sysfs uses 4. */
    if (sscanf(bdf, "%x:%x:%x.%x", &d, &b, &dv, &fn) != 4) return NULL;
    char norm[BDF_LEN];
    bdf_normalize(norm, d, b, dv, fn);
    for (int i = 0; i < st->count; i++)
        if (strcmp(st->devices[i].bdf, norm) == 0) return &st->devices[i];
    return NULL;
}

void device_add_link(pci_device *d, const char *type, const char *peer, const char *peer_kind) {
    for (int i = 0; i < d->link_count; i++)
        if (strcmp(d->links[i].peer, peer) == 0 && strcmp(d->links[i].type, type) == 0) {
            d->links[i].count++;
            return;
        }
    if (d->link_count >= MAX_LINKS) return;
    device_link *l = &d->links[d->link_count++];
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    l->type = type;
    l->peer_kind = peer_kind;
    l->count = 1;
}

/* Splits the resolved device path into root complex and bridge chain. */
static void fill_ancestry(pci_device *dev, const char *resolved) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", resolved);
    char *save = NULL;
    int in_tree = 0;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!in_tree) {
            if (strncmp(c, "pci", 3) == 0 && strchr(c, ':')) {
                snprintf(dev->root_complex, sizeof dev->root_complex, "%s", c);
                in_tree = 1;
            }
            continue;
        }
        if (!is_bdf(c) || strcmp(c, dev->bdf) == 0) continue;
        if (dev->path_len < MAX_PATH_DEPTH) snprintf(dev->path[dev->path_len++], BDF_LEN, "%s", c);
    }
}

static int by_bdf(const void *a, const void *b) {
    return strcmp(((const pci_device *)a)->bdf, ((const pci_device *)b)->bdf);
}

int pci_scan(probe_state *st, const char *sysfs_root) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/bus/pci/devices", sysfs_root);
    DIR *d = opendir(dir);
    if (!d) {
        probe_error(st, "cannot read %s: %s (is --sysfs-root the sysfs mount, e.g. /sys?)", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_bdf(e->d_name)) continue;
        char link[PATH_MAX + 300], resolved[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        unsigned long vendor = 0, device = 0, cls = 0;
        if (!read_hex(link, "vendor", &vendor)) continue;
        vendor_kind vk;
        if (!vendor_from_id((uint16_t)vendor, &vk)) continue;
        if (!read_hex(link, "device", &device)) {
            probe_error(st, "%s: unreadable device id", e->d_name);
            continue;
        }
        read_hex(link, "class", &cls);
        const device_model *m = model_lookup((uint16_t)vendor, (uint16_t)device);
        if (!m && !vendor_accepts_class(vk, (uint32_t)cls)) continue;
        if (st->count >= MAX_DEVICES) { st->truncated = 1; continue; }
        pci_device *p = &st->devices[st->count++];
        memset(p, 0, sizeof *p);
        unsigned dom, bus, dv, fn;
        sscanf(e->d_name, "%x:%x:%x.%x", &dom, &bus, &dv, &fn);
        bdf_normalize(p->bdf, dom, bus, dv, fn);
        p->vendor = vk;
        p->vendor_id = (uint16_t)vendor;
        p->device_id = (uint16_t)device;
        p->class_code = (uint32_t)cls;
        p->model = m;
        long numa = -1;
        p->numa_node = read_int(link, "numa_node", &numa) ? (int)numa : -1;
        p->mem_total_bytes = p->mem_used_bytes = -1;
        p->health = "unknown";
        p->status = "no_management_library";
        if (realpath(link, resolved)) fill_ancestry(p, resolved);
        else probe_error(st, "%s: cannot resolve sysfs link: %s", e->d_name, strerror(errno));
    }
    closedir(d);
    if (st->truncated) probe_error(st, "more than %d accelerators; the rest are not reported", MAX_DEVICES);
    qsort(st->devices, (size_t)st->count, sizeof st->devices[0], by_bdf);
    return 0;
}
