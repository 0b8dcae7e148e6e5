/* DPS identifier rules with readable reasons: registration and enrollment group ids
 * (docs/protocol.md §7.1) and the device ids enrollments name (IoT Hub's rule, §6.3). */
#include <stdio.h>
#include <string.h>

#include "hub/dps/dps_internal.h"
#include "proto/azure_topics.h"
#include "proto/dps.h"

/* The reason for a character outside the allowed set. The id itself is never echoed: it may hold
 * anything, up to control characters, and it goes into logs. */
static void bad_char(char *err, size_t cap, const char *what, const char *allowed,
                     unsigned char bad)
{
    if (bad == ' ')
        snprintf(err, cap, "the %s may contain only %s, not spaces", what, allowed);
    else if (bad > ' ' && bad < 0x7f)
        snprintf(err, cap, "the %s may contain only %s, not '%c'", what, allowed, bad);
    else
        snprintf(err, cap, "the %s may contain only %s, not byte 0x%02x", what, allowed, bad);
}

bool dps_id_valid(const char *what, const char *id, char *err, size_t cap)
{
    size_t len = strlen(id);
    if (az_dps_valid_registration_id(id, len))
        return true;
    /* The rule is proto's, shared with devices; this only finds the reason to give. */
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:";
    size_t ok = strspn(id, allowed);
    unsigned char last = len ? (unsigned char)id[len - 1] : 0;
    if (len == 0)
        snprintf(err, cap, "the %s is empty", what);
    else if (len > DPS_ID_MAX)
        snprintf(err, cap, "the %s is %zu characters long; at most %d are allowed", what, len,
                 DPS_ID_MAX);
    else if (ok < len)
        bad_char(err, cap, what, "letters, digits and - . _ :", (unsigned char)id[ok]);
    else
        snprintf(err, cap, "the %s must end with a letter, a digit or '-', not '%c'", what, last);
    return false;
}

bool dps_device_id_valid(const char *id, char *err, size_t cap)
{
    size_t len = strlen(id);
    if (az_valid_device_id(id, len))
        return true;
    /* The hub's own rule (az_valid_device_id, as the registry API applies it) decides; this only
     * finds the character to name, by asking the same rule one character at a time. */
    size_t i = 0;
    while (i < len && az_valid_device_id(id + i, 1))
        i++;
    if (len == 0)
        snprintf(err, cap, "the device id is empty");
    else if (len > AZ_MAX_ID_LEN)
        snprintf(err, cap, "the device id is %zu characters long; at most %d are allowed", len,
                 AZ_MAX_ID_LEN);
    else
        bad_char(err, cap, "device id", "ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ '",
                 (unsigned char)id[i < len ? i : 0]);
    return false;
}
