/* SPDX-License-Identifier: MIT */
/* Logging in the style of xdp-tools: one line per event, level first, to stderr. */
#ifndef RSPLICE_LOG_H
#define RSPLICE_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_WARN = 0, LOG_LEVEL_INFO = 1, LOG_LEVEL_DEBUG = 2 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* name printed as prefix, e.g. "rsplice-edge" */
void log_set_prog(const char *name);
void log_print(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_warn(...) log_print(LOG_LEVEL_WARN, __VA_ARGS__)
#define pr_info(...) log_print(LOG_LEVEL_INFO, __VA_ARGS__)
#define pr_debug(...) log_print(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Route libbpf's own messages to debug level: we print one clear line of ours instead. */
void log_quiet_libbpf(void);

#endif
