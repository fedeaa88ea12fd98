/* Fake ACL runtime (libascendcl.so): device memory is host memory; can corrupt copies on request. */
#include <stdint.h>

#include "fake_common.h"

int aclInit(const char *cfg) {
    (void)cfg;
#ifdef FAKE_INIT_FAILS
    return 500000; /* ACL_ERROR_INTERNAL_ERROR */
#else
    return 0;
#endif
}
int aclFinalize(void) { return 0; }
int aclrtGetDeviceCount(uint32_t *n) {
    const char *e = getenv("SUANLI_FAKE_NPUS");
    *n = e ? (uint32_t)atoi(e) : 2;
    return 0;
}
int aclrtSetDevice(int32_t d) { (void)d; return 0; }
int aclrtResetDevice(int32_t d) { (void)d; return 0; }
int aclrtMalloc(void **p, size_t n, int policy) {
    (void)policy;
    *p = malloc(n);
    return *p ? 0 : 207001; /* ACL_ERROR_RT_MEMORY_ALLOCATION */
}
int aclrtFree(void *p) { free(p); return 0; }
#ifndef FAKE_OMIT_REQUIRED
int aclrtMemcpy(void *dst, size_t max, const void *src, size_t n, int kind) {
    if (n > max) return 100000;
    memcpy(dst, src, n);
    if (kind == 3 && getenv("SUANLI_FAKE_CORRUPT")) ((unsigned char *)dst)[n / 3] ^= 0x10;
    return 0;
}
#endif
