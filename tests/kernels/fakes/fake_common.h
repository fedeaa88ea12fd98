/* Shared helpers for the fake vendor libraries: the "driver" sees the BDFs in $SUANLI_FAKE_BDFS. */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAX 64

static inline int fake_bdfs(unsigned bus[FAKE_MAX], unsigned dev[FAKE_MAX], unsigned fn[FAKE_MAX]) {
    const char *env = getenv("SUANLI_FAKE_BDFS");
    char buf[4096];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", env ? env : "");
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t && n < FAKE_MAX; t = strtok_r(NULL, ",", &save)) {
        unsigned d;
        if (sscanf(t, "%x:%x:%x.%x", &d, &bus[n], &dev[n], &fn[n]) == 4) n++;
    }
    return n;
}

/* Whether device i is the one $var names ("0000:1b:00.0"). */
static inline int fake_is(const char *var, unsigned bus, unsigned dev, unsigned fn) {
    const char *env = getenv(var);
    unsigned d, b, v, f;
    return env && sscanf(env, "%x:%x:%x.%x", &d, &b, &v, &f) == 4 && b == bus && v == dev && f == fn;
}
#endif
