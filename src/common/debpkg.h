/* Debian package names and versions: syntax checks and version ordering (Debian policy 5.6). */
#ifndef IOTDM_COMMON_DEBPKG_H
#define IOTDM_COMMON_DEBPKG_H

#include <stdbool.h>
#include <stddef.h>

#define DEBPKG_NAME_MAX    128 /* policy sets no limit; twin keys and unit names need one */
#define DEBPKG_VERSION_MAX 128

/* A package name per policy 5.6.1: [a-z0-9][a-z0-9+.-]+ (at least two characters), at most
 * DEBPKG_NAME_MAX bytes. len excludes the NUL; a NUL inside makes it invalid. */
bool debpkg_name_valid(const char *name, size_t len);

/* A version per policy 5.6.12: [epoch:]upstream[-revision], epoch digits, upstream starting with a
 * digit from [A-Za-z0-9.+~-] (':' only after an epoch), revision from [A-Za-z0-9.+~], at most
 * DEBPKG_VERSION_MAX bytes. */
bool debpkg_version_valid(const char *version, size_t len);

/* Orders two valid versions as dpkg does: <0, 0 or >0. */
int debpkg_version_compare(const char *a, const char *b);

/* Splits "name" or "name=version" (an apt spec) into name (copied into name_buf, NUL-terminated)
 * and *out_version (pointing into spec, NULL without '='). False when either part is invalid. */
bool debpkg_spec_parse(const char *spec, char *name_buf, size_t name_cap, const char **out_version);

#endif
