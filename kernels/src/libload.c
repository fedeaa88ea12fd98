/* Run-time loading of vendor libraries: a node without a vendor's stack must still probe cleanly. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int try_open(vendor_lib *lib, const char *file) {
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        lib->handle = h;
        snprintf(lib->path, sizeof lib->path, "%s", file);
        lib->error[0] = '\0';
        return 1;
    }
    const char *e = dlerror();
    if (e && !strstr(e, "cannot open shared object file")) lib->broken = 1;
    /* Keep the first real failure (e.g. a broken library) rather than later "not found"s. */
    if (e && (!lib->error[0] || strstr(lib->error, "No such file"))) snprintf(lib->error, sizeof lib->error, "%s", e);
    return 0;
}

int vendor_lib_open(vendor_lib *lib, const char *lib_path, const char *const *names,
                    const char *const *default_dirs) {
    memset(lib, 0, sizeof *lib);
    if (!lib_path || !*lib_path) lib_path = getenv("SUANLI_VENDOR_LIB_PATH");
    char file[1024];
    if (lib_path && *lib_path) {
        char dirs[2048];
        snprintf(dirs, sizeof dirs, "%s", lib_path);
        char *save = NULL;
        for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
            for (const char *const *n = names; *n; n++) {
                snprintf(file, sizeof file, "%s/%s", dir, *n);
                if (try_open(lib, file)) return 1;
            }
    } else {
        for (const char *const *n = names; *n; n++)
            if (try_open(lib, *n)) return 1;
        for (const char *const *d = default_dirs; d && *d; d++)
            for (const char *const *n = names; *n; n++) {
                snprintf(file, sizeof file, "%s/%s", *d, *n);
                if (try_open(lib, file)) return 1;
            }
    }
    snprintf(lib->path, sizeof lib->path, "%s%s%s", names[0], lib_path && *lib_path ? " in " : "",
             lib_path && *lib_path ? lib_path : "");
    if (!lib->error[0]) snprintf(lib->error, sizeof lib->error, "%s not found", names[0]);
    return 0;
}

void vendor_lib_close(vendor_lib *lib) {
    if (lib->handle) dlclose(lib->handle);
    lib->handle = NULL;
}

void *vendor_sym(vendor_lib *lib, const char *name) {
    dlerror();
    void *p = lib->handle ? dlsym(lib->handle, name) : NULL;
    if (!p) snprintf(lib->error, sizeof lib->error, "missing symbol %s in %s", name, lib->path);
    return p;
}

void *vendor_sym_opt(vendor_lib *lib, const char *name) {
    return lib->handle ? dlsym(lib->handle, name) : NULL;
}
