/* What every management-library loader (mgmt_*.c) does the same way: skip a vendor with no devices, open its
   library or say why not, and fail the vendor's devices with one reason. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void mgmt_mark(probe_state *st, vendor_kind v, const char *status, const char *detail) {
    for (int i = 0; i < st->count; i++)
        if (st->devices[i].vendor == v) {
            st->devices[i].status = status;
            snprintf(st->devices[i].status_detail, sizeof st->devices[i].status_detail, "%s", detail);
        }
}

int mgmt_open(probe_state *st, vendor_kind v, const char *report_name, vendor_lib *lib, const char *lib_path,
              const char *const *names, const char *const *dirs, const char *missing_hint) {
    mgmt_report *r = &st->mgmt[v];
    r->name = report_name;
    int any = 0;
    for (int i = 0; i < st->count; i++) any |= st->devices[i].vendor == v;
    if (!any) {
        r->status = "not_needed";
        return 0;
    }
    if (!vendor_lib_open(lib, lib_path, names, dirs)) {
        r->status = lib->broken ? "error" : "missing";
        snprintf(r->path, sizeof r->path, "%s", lib->path);
        snprintf(r->detail, sizeof r->detail, "%s", lib->error);
        mgmt_mark(st, v, lib->broken ? "error" : "no_management_library", lib->broken ? lib->error : missing_hint);
        return 0;
    }
    snprintf(r->path, sizeof r->path, "%s", lib->path);
    return 1;
}

void mgmt_fail(probe_state *st, vendor_kind v, vendor_lib *lib, const char *fmt, ...) {
    mgmt_report *r = &st->mgmt[v];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    r->status = "error";
    mgmt_mark(st, v, "error", r->detail);
    vendor_lib_close(lib);
}
