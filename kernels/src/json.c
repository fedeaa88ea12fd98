/* Minimal streaming JSON writer: the library's only output format, so it must escape correctly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void json_init(json *j) { memset(j, 0, sizeof *j); }

static void put(json *j, const char *s, size_t n) {
    if (j->failed) return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        while (cap < j->len + n + 1) cap *= 2;
        char *nb = realloc(j->buf, cap);
        if (!nb) { j->failed = 1; return; }
        j->buf = nb;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void puts_(json *j, const char *s) { put(j, s, strlen(s)); }

/* Writes the separator a new value needs: nothing after a key, a comma between siblings. */
static void value_prefix(json *j) {
    if (j->after_key) { j->after_key = 0; return; }
    if (j->depth > 0 && j->need_comma[j->depth - 1]) put(j, ",", 1);
    if (j->depth > 0) j->need_comma[j->depth - 1] = 1;
}

static void open_(json *j, const char *c) {
    value_prefix(j);
    puts_(j, c);
    if (j->depth >= JSON_MAX_DEPTH) { j->failed = 1; return; }
    j->need_comma[j->depth++] = 0;
}

static void close_(json *j, const char *c) {
    if (j->depth > 0) j->depth--;
    puts_(j, c);
}

void json_obj(json *j) { open_(j, "{"); }
void json_end_obj(json *j) { close_(j, "}"); }
void json_arr(json *j) { open_(j, "["); }
void json_end_arr(json *j) { close_(j, "]"); }

static void quoted(json *j, const char *s) {
    put(j, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': puts_(j, "\\\""); break;
        case '\\': puts_(j, "\\\\"); break;
        case '\n': puts_(j, "\\n"); break;
        case '\r': puts_(j, "\\r"); break;
        case '\t': puts_(j, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                puts_(j, esc);
            } else {
                put(j, (const char *)p, 1);
            }
        }
    }
    put(j, "\"", 1);
}

void json_key(json *j, const char *key) {
    value_prefix(j);
    quoted(j, key);
    put(j, ":", 1);
    j->after_key = 1;
}

void json_str(json *j, const char *s) {
    if (!s) { json_null(j); return; }
    value_prefix(j);
    quoted(j, s);
}

void json_int(json *j, int64_t v) {
    char b[32];
    value_prefix(j);
    snprintf(b, sizeof b, "%lld", (long long)v);
    puts_(j, b);
}

void json_num(json *j, double v) {
    char b[40];
    if (!isfinite(v)) { json_null(j); return; }
    value_prefix(j);
    snprintf(b, sizeof b, "%.6g", v);
    puts_(j, b);
}

void json_bool(json *j, int v) { value_prefix(j); puts_(j, v ? "true" : "false"); }
void json_null(json *j) { value_prefix(j); puts_(j, "null"); }

char *json_finish(json *j) {
    if (j->failed || j->depth != 0) { free(j->buf); j->buf = NULL; return NULL; }
    char *out = j->buf;
    j->buf = NULL;
    return out;
}
